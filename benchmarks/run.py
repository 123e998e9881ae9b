"""The benchmark suite: one command, one markdown table (benchmarks/results.md).

Each row is a ratio measured in this run on the same data: a generated events file
(benchmarks/generate.py, written under benchmarks/data/ and reused). Every task runs in
its own process (benchmarks/tasks.py) so its peak RSS is its own. Timings are not tests:
run this on demand.

    make bench                                         # 5M events, 30k items
    .venv/bin/python benchmarks/run.py --quick         # 300k events: a smoke run
    .venv/bin/python benchmarks/run.py --only extract,align
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_lines, markdown_table  # noqa: E402
from generate import DATA, generate  # noqa: E402

GROUPS = ("extract", "pretrain", "workers", "recommend", "align", "finetune")


def task(name: str, *args) -> dict:
    cmd = [sys.executable, str(Path(__file__).with_name("tasks.py")), name, *map(str, args)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if run.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{run.stderr[-2000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"  {name} {' '.join(map(str, args[:1]))}: {result['seconds']:.2f}s, peak RSS {result['peak_rss_mb']:.0f} MB",
          file=sys.stderr, flush=True)
    return result


def row(name, ours, base, ratio, target, met, note="") -> list:
    return [name, ours, base, f"{ratio:.2f}x", target, "yes" if met else "**no**", note]


def bench_extract(events: Path, tmp: Path) -> list[list]:
    ours = task("extract-catvec", events, tmp / "c.txt")
    polars = task("extract-polars", events, tmp / "p.txt")
    pandas = task("extract-pandas", events, tmp / "d.txt")
    r1, r2 = ours["seconds"] / polars["seconds"], pandas["seconds"] / ours["seconds"]
    return [row("extraction (read + sequences) vs hand-written Polars group-by", f"{ours['seconds']:.2f}s",
                f"{polars['seconds']:.2f}s", r1, "<= 1.5x slower", r1 <= 1.5,
                f"peak RSS {ours['peak_rss_mb']:.0f} MB vs {polars['peak_rss_mb']:.0f} MB"),
            row("extraction: naive pandas groupby().apply(list) vs catvec", f"{ours['seconds']:.2f}s",
                f"{pandas['seconds']:.2f}s", r2, ">= 10x faster", r2 >= 10,
                f"pandas peak RSS {pandas['peak_rss_mb']:.0f} MB")]


def bench_pretrain(events: Path, tmp: Path, epochs: int) -> tuple[list[list], str]:
    ours = task("pretrain-catvec", events, tmp / "art", epochs, 2)
    bare = task("gensim-bare", ours["corpus"], epochs, 2)
    cached = task("pretrain-catvec", events, tmp / "art", epochs, 2, 0)
    r1, r2 = ours["seconds"] / bare["seconds"], cached["seconds"] / bare["seconds"]
    return [row(f"catvec pretrain end to end vs bare gensim Word2Vec(corpus_file), {epochs} epochs",
                f"{ours['seconds']:.1f}s", f"{bare['seconds']:.1f}s", r1, "<= 1.10x", r1 <= 1.10,
                f"extraction included; peak RSS {ours['peak_rss_mb']:.0f} MB"),
            row("catvec pretrain with its corpus cached vs bare gensim", f"{cached['seconds']:.1f}s",
                f"{bare['seconds']:.1f}s", r2, "<= 1.10x", r2 <= 1.10, "loss probe, map, report, checksums")], ours["corpus"]


def bench_workers(corpus: str, epochs: int) -> list[list]:
    one = task("gensim-bare", corpus, epochs, 1)
    two = task("gensim-bare", corpus, epochs, 2)
    r = one["seconds"] / two["seconds"]
    return [row("training speed, 2 workers vs 1 (corpus_file mode)", f"{two['words_per_second']:,.0f} words/s",
                f"{one['words_per_second']:,.0f} words/s", r, "scales (ideal 2x)", r >= 1.6,
                "on a 2-core machine shared with other work")]


def bench_recommend(n: int) -> list[list]:
    ours = task("recommend-catvec", n, n)
    loop = task("recommend-loop", n, n)
    r = loop["seconds"] / ours["seconds"]
    return [row(f"recommend top 10 for {n:,} queries over {n:,} items vs a per-query numpy loop",
                f"{ours['seconds']:.1f}s", f"{loop['seconds']:.1f}s (1,000 queries, scaled)", r,
                "well under a minute", ours["seconds"] < 45, f"peak RSS {ours['peak_rss_mb']:.0f} MB; dim 64, 5 items per query")]


def bench_align(n: int) -> list[list]:
    ours = task("align-catvec", n)
    loop = task("align-dict-loop", n)
    r = loop["seconds"] / ours["seconds"]
    return [row(f"alignment of a {n:,}-key vocab vs a Python dict loop", f"{ours['seconds']:.2f}s",
                f"{loop['seconds']:.2f}s", r, ">= 20x, about 1s", r >= 20 and ours["seconds"] <= 1.5,
                f"peak RSS {ours['peak_rss_mb']:.0f} MB")]


def bench_finetune(n: int) -> list[list]:
    sparse = task("finetune-steps", n, 1)
    dense = task("finetune-steps", n, 0)
    r = sparse["steps_per_second"] / dense["steps_per_second"]
    return [row(f"finetune steps/s, {n:,}-row table: sparse (SparseAdam) vs dense AdamW",
                f"{sparse['steps_per_second']:.1f}/s", f"{dense['steps_per_second']:.1f}/s", r, ">= 5x", r >= 5,
                f"peak RSS {sparse['peak_rss_mb']:.0f} MB vs {dense['peak_rss_mb']:.0f} MB; batch 512, dim 32")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=5_000_000)
    p.add_argument("--items", type=int, default=30_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=3, help="training epochs of the pretrain rows (default: 3)")
    p.add_argument("--rows", type=int, default=1_000_000, help="vocab / table size of align and finetune rows")
    p.add_argument("--quick", action="store_true", help="300k events, 100k rows: a smoke run")
    p.add_argument("--only", default=",".join(GROUPS), help=f"comma list of {', '.join(GROUPS)}")
    p.add_argument("--out", default=str(Path(__file__).with_name("results.md")))
    args = p.parse_args(argv)
    if args.quick:
        args.events, args.items, args.users, args.rows = 300_000, 5_000, 8_000, 100_000
    only = [g.strip() for g in args.only.split(",") if g.strip()]
    events = DATA / f"events_{args.events}_{args.items}_{args.users}.csv"
    if not events.is_file():
        print(f"generating {events.name} ...", file=sys.stderr)
        generate(events, args.events, args.items, args.users)
    started = time.perf_counter()
    rows: list[list] = []
    tmp = Path(tempfile.mkdtemp(prefix="catvec-bench-"))

    def write_table() -> str:
        # Rewritten after each group: an interrupted run still leaves the rows it measured.
        lines = ["# catvec benchmarks", "", *machine_lines(),
                 f"- data: {events.name} ({args.events:,} events, {args.items:,} items, {args.users:,} users), "
                 f"generated by benchmarks/generate.py; training rows: {args.epochs} epochs, catvec's default parameters",
                 f"- command: `.venv/bin/python benchmarks/run.py{' --quick' if args.quick else ''}"
                 f"{'' if len(only) == len(GROUPS) else ' --only ' + ','.join(only)}` ({time.perf_counter() - started:.0f}s)",
                 "", *markdown_table(["benchmark", "catvec", "baseline", "ratio", "target", "met", "notes"], rows), ""]
        Path(args.out).write_text("\n".join(lines), encoding="utf-8")
        return "\n".join(lines)

    try:
        corpus = None
        if "extract" in only:
            rows += bench_extract(events, tmp)
            write_table()
        if "pretrain" in only:
            new, corpus = bench_pretrain(events, tmp, args.epochs)
            rows += new
            write_table()
        if "workers" in only:
            if corpus is None:
                corpus = task("pretrain-catvec", events, tmp / "art", 1, 2)["corpus"]
            rows += bench_workers(corpus, args.epochs)
            write_table()
        if "recommend" in only:
            rows += bench_recommend(args.rows // 10)
            write_table()
        if "align" in only:
            rows += bench_align(args.rows)
            write_table()
        if "finetune" in only:
            rows += bench_finetune(args.rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(write_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to first vectors: the `catvec pretrain` command against a bare gensim script.

Both sides run as fresh processes timed from outside, so each figure includes the
interpreter start, the imports, reading the events, building the sequences, training and
writing the vectors. Same settings on both sides, given explicitly (catvec with
`--no-tune`, so it trains once, as the script does):

- bare: `pl.read_csv`, sort by user and time, drop immediate repeats, one line of items per
  user (users with at least two events), written as a text file; gensim
  `Word2Vec(corpus_file=...)`; `model.wv.save(...)`. Those are exactly catvec's default
  sequences, and the script checks that both sides trained on the same number of tokens;
- catvec: `python -m catvec.cli.main pretrain --events ... --out ... --no-tune --dim ...`
  with a cold corpus cache (a fresh OUT each run).

The fixed cost is catvec minus bare on a tiny corpus (2,000 events), where training is
instant, in wall seconds and in CPU seconds (user + system of the process, all threads;
less sensitive than wall time to other work on a shared machine). Each measurement is repeated and the median kept; runs of the two sides alternate
so both see the same load. Writes benchmarks/results-first-vectors.md.

    .venv/bin/python benchmarks/first_vectors.py                   # tiny, 300k and 5M events, 3 repeats
    .venv/bin/python benchmarks/first_vectors.py --sizes 300000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TINY = 2_000
# events -> (items, users) of the generated file
SHAPES = {TINY: (200, 100), 300_000: (5_000, 8_000), 5_000_000: (30_000, 100_000)}
EXTRA_FLAGS: list[str] = []  # --catvec-flags
SETTINGS = {"dim": 64, "window": 5, "negative": 5, "ns_exponent": 0.75, "sample": 0.001, "alpha": 0.025,
            "min_alpha": 0.0001, "min_count": 1, "seed": 1}


# ---- the bare script (run as `first_vectors.py bare EVENTS OUT EPOCHS WORKERS`) ---------

def bare(events: str, out: str, epochs: int, workers: int) -> dict:
    """What a person writes without catvec: polars group-by, gensim, save."""
    from gensim.models import Word2Vec

    t = time.perf_counter()  # polars' import counts as reading, as it does in catvec's timings
    import polars as pl

    frame = pl.read_csv(events, schema_overrides={"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64})
    frame = frame.sort("user_id", "timestamp", maintain_order=True)
    repeat = (pl.col("user_id") == pl.col("user_id").shift(1)) & (pl.col("item_id") == pl.col("item_id").shift(1))
    lines = (frame.filter(~repeat.fill_null(False))
             .group_by("user_id", maintain_order=True).agg(pl.col("item_id").str.join(" "), n=pl.len())
             .filter(pl.col("n") >= 2))
    Path(out).mkdir(parents=True, exist_ok=True)
    corpus = str(Path(out) / "corpus.txt")
    lines.select("item_id").write_csv(corpus, include_header=False, quote_style="never")
    extract = time.perf_counter() - t
    t = time.perf_counter()
    s = SETTINGS
    model = Word2Vec(corpus_file=corpus, sg=1, vector_size=s["dim"], window=s["window"], negative=s["negative"], hs=0,
                     ns_exponent=s["ns_exponent"], sample=s["sample"], alpha=s["alpha"], min_alpha=s["min_alpha"],
                     min_count=s["min_count"], seed=s["seed"], workers=workers, epochs=epochs)
    train = time.perf_counter() - t
    model.wv.save(str(Path(out) / "vectors.kv"))
    return {"extract": extract, "train": train, "tokens": int(lines["n"].sum())}


# ---- the measurement ----------------------------------------------------------------------

def run_bare(events: Path, out: Path, epochs: int, workers: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "bare", str(events), str(out), str(epochs), str(workers)]
    return _timed(cmd, lambda stdout: json.loads(stdout.strip().splitlines()[-1]))


def run_catvec(events: Path, out: Path, epochs: int, workers: int, extra=()) -> dict:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    cmd = [sys.executable, "-m", "catvec.cli.main", "pretrain", "--events", str(events), "--out", str(out),
           "--no-tune", f"--epochs={epochs}", f"--workers={workers}", *flags, "-q", *EXTRA_FLAGS, *extra]

    def parse(_stdout: str) -> dict:
        m = json.loads((out / "latest" / "manifest.json").read_text())
        return {"extract": m["timings"]["read_seconds"] + m["timings"]["extract_seconds"],
                "train": m["training"]["vocab_seconds"] + m["training"]["train_seconds"],
                "tokens": m["corpus"]["tokens"]}

    return _timed(cmd, parse)


def _timed(cmd: list[str], parse) -> dict:
    """Wall seconds and CPU seconds (user + system, all threads) of one process."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{run.stderr[-2000:]}")
    cpu = now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime
    return {"wall": wall, "cpu": cpu, **parse(run.stdout)}


def measure(events: Path, tmp: Path, epochs: int, workers: int, repeats: int, with_map: bool) -> dict:
    """Median of `repeats` alternating runs of each side."""
    runs: dict[str, list[dict]] = {"bare": [], "catvec": [], "catvec_map": []}
    for r in range(repeats):
        for side in ("bare", "catvec", "catvec_map") if with_map else ("bare", "catvec"):
            out = tmp / f"{side}-{r}"
            if side == "bare":
                runs[side].append(run_bare(events, out, epochs, workers))
            else:
                runs[side].append(run_catvec(events, out, epochs, workers, ["--vector-map"] if side == "catvec_map" else []))
            shutil.rmtree(out, ignore_errors=True)
            print(f"  {events.name} {side} #{r + 1}: {runs[side][-1]['wall']:.2f}s", file=sys.stderr, flush=True)
    result = {side: {k: statistics.median(run[k] for run in done) for k in done[0]} for side, done in runs.items() if done}
    if result["bare"]["tokens"] != result["catvec"]["tokens"]:
        raise RuntimeError(f"{events.name}: the sides trained on different sequences "
                           f"({result['bare']['tokens']} vs {result['catvec']['tokens']} tokens)")
    return result


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "bare":
        print(json.dumps(bare(argv[1], argv[2], int(argv[3]), int(argv[4]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="300000,5000000", help="comma list of event counts (the tiny corpus always runs)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--large-epochs", type=int, default=1,
                   help="epochs from 1M events up (5 epochs of 5M events take many minutes on a small machine)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tiny-repeats", type=int, default=9, help="repeats on the tiny corpus, where load noise "
                                                                 "is as large as the fixed cost")
    p.add_argument("--catvec-flags", default="", help="more flags for every catvec run, e.g. \"--no-gate\"")
    p.add_argument("--out", default=str(HERE / "results-first-vectors.md"))
    args = p.parse_args(argv)
    EXTRA_FLAGS[:] = args.catvec_flags.split()
    sys.path.insert(0, str(HERE))
    from generate import DATA, generate

    sizes = [TINY] + [int(s) for s in args.sizes.split(",") if s.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="catvec-first-vectors-"))
    rows, loads = [], []
    started = time.perf_counter()
    try:
        for n in sizes:
            items, users = SHAPES.get(n, (30_000, max(n // 50, 100)))
            events = DATA / f"events_{n}_{items}_{users}.csv"
            if not events.is_file():
                print(f"generating {events.name} ...", file=sys.stderr, flush=True)
                generate(events, n, items, users)
            before = uptime()
            epochs = args.large_epochs if n >= 1_000_000 else args.epochs
            r = measure(events, tmp, epochs, args.workers, args.tiny_repeats if n == TINY else args.repeats,
                        with_map=n <= 300_000)
            loads.append(f"- {n:,} events: before `{before}`; after `{uptime()}`")
            b, c = r["bare"], r["catvec"]
            rows.append([f"{n:,}", epochs, f"{b['wall']:.2f}s", f"{c['wall']:.2f}s", f"{c['wall'] / b['wall']:.2f}x",
                         f"{c['wall'] - b['wall']:+.2f}s", f"{b['cpu']:.2f}s / {c['cpu']:.2f}s ({c['cpu'] - b['cpu']:+.2f}s)",
                         f"{b['extract']:.2f}s / {c['extract']:.2f}s",
                         f"{b['train']:.2f}s / {c['train']:.2f}s",
                         f"{r['catvec_map']['wall'] - c['wall']:+.2f}s" if "catvec_map" in r else "-",
                         f"{b['tokens']:,}"])
            write_results(args, rows, loads, started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(write_results(args, rows, loads, started))
    return 0


def write_results(args, rows: list[list], loads: list[str], started: float) -> str:
    """The results file, rewritten after each size: an interrupted run keeps what it measured."""
    from common import machine_lines, markdown_table

    command = (f".venv/bin/python benchmarks/first_vectors.py --sizes {args.sizes} --epochs {args.epochs} "
               f"--large-epochs {args.large_epochs} --workers {args.workers} --repeats {args.repeats} "
               f"--tiny-repeats {args.tiny_repeats}" + (f" --catvec-flags=\"{args.catvec_flags}\"" if args.catvec_flags else ""))
    s = SETTINGS
    lines = ["# Time to first vectors: `catvec pretrain` vs bare gensim", "", *machine_lines(),
             f"- command: `{command}` ({time.perf_counter() - started:.0f}s)",
             f"- settings, both sides: skip-gram, dim {s['dim']}, window {s['window']}, negative {s['negative']}, "
             f"ns_exponent {s['ns_exponent']}, sample {s['sample']}, min_count {s['min_count']}, "
             f"{args.workers} workers, seed {s['seed']}; catvec with `--no-tune`; {args.epochs} epochs "
             f"({args.large_epochs} from 1M events up)",
             f"- each figure: median of {args.repeats} runs ({args.tiny_repeats} on the tiny corpus), each a fresh "
             "process timed from outside "
             "(interpreter start and imports included); bare and catvec runs alternate",
             "- data: benchmarks/generate.py (tiny: 200 items, 100 users; 300k: 5k items, 8k users; "
             "5M: 30k items, 100k users)", "- load (`uptime`) around each size:", *loads, "",
             *markdown_table(["events", "epochs", "bare gensim", "catvec pretrain", "ratio", "catvec - bare",
                              "CPU, all threads (bare / catvec)",
                              "read + sequences (bare / catvec)", "gensim vocab + train (bare / catvec)",
                              "--vector-map adds", "tokens trained (both)"], rows),
             "", f"Fixed cost (catvec - bare on {TINY:,} events): {rows[0][5]} wall, "
             f"{rows[0][6].split('(')[1].rstrip(')')} CPU.", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

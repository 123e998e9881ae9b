"""Bounded memory of a whole default run: `catvec pretrain --memory 512MB --holdout last`
(tuning on, every other setting default) on hive-partitioned Parquet of generated events
(one partition per month, benchmarks/scale.py's data), this code against a baseline
checkout of the code (e.g. `git worktree add --detach ../base main`) in the same run.

Every run is a fresh subprocess that reports its own peak RSS (getrusage) and the run's
timings from its manifest; extraction is the split into shard files (read_seconds) plus
the shard extraction (extract_seconds). Also checks that both codes wrote the same corpus.

    python benchmarks/memory.py --base ../base                     # 2M, 8M, 32M
    python benchmarks/memory.py --base ../base --sizes 2M,8M,16M
    python benchmarks/memory.py --stages --sizes 2M,32M        # the tuning sample + holdout tasks alone
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_lines, markdown_table  # noqa: E402
from generate import DATA  # noqa: E402
from scale import ITEMS, EVENTS_PER_USER, parse_size  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import hashlib, json, resource, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
from catvec.cli.main import main
t0 = time.perf_counter()
code = main(["pretrain", "--events", args["events"], "--out", args["out"], "--memory", args["memory"],
             "--holdout", "last", "--quiet", *args["extra"]])
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = Path(args["out"])
manifest = json.loads((out / "latest" / "manifest.json").read_text())
digest = hashlib.sha256()
with open(next((out / ".cache").glob("corpus-*/corpus.txt")), "rb") as fh:
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
quality = manifest["quality"]["vectors"]["test"]
print(json.dumps({"code": code, "wall": wall, "rss_kb": rss, "timings": manifest["timings"],
                  "tokens": manifest["corpus"]["tokens"], "sha": digest.hexdigest()[:16],
                  "chosen": manifest["tuning"].get("chosen"), "hr": quality["hr"], "users": quality["users"]}))
"""


STAGES = r"""
import json, resource, shutil, sys, time
args = json.loads(sys.argv[1])
from catvec.pretraining import autotune
from catvec.pretraining.config import PretrainConfig
from catvec.pretraining.corpus import extraction_options
from catvec.pretraining.evaluation import build_tasks
from catvec.pretraining.events import read_events_table
cfg = PretrainConfig(events=args["events"], memory=args["memory"], holdout="last").validate()
t0 = time.perf_counter()
if args["how"] == "split":
    from catvec.pretraining.split import open_split
    table = open_split(cfg, args["tmp"])
else:
    table = read_events_table(cfg)
sample = autotune.sample_events(table, cfg.tune_events, cfg.seed)
keys = sorted(set(sample.frame["item"].to_list()))
tasks, counts, heldout = build_tasks(table, keys, 1, **extraction_options(cfg))
shutil.rmtree(args["tmp"], ignore_errors=True)
print(json.dumps({"wall": time.perf_counter() - t0, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "sample": sample.frame.height, "users": tasks["test"].n_users}))
"""

HEADER = "## Memory of a whole default run (benchmarks/memory.py)"
STAGES_HEADER = "## Memory of the tuning sample and the holdout tasks alone (benchmarks/memory.py --stages)"


def write_section(path: Path, lines: list[str]) -> None:
    """Replace the section under its header (lines[0]) in `path` (up to the next level-2 header), or append it."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if lines[0] in text:
        before, _, after = text.partition(lines[0])
        rest = after.split("\n## ", 1)
        text = before + ("## " + rest[1] if len(rest) > 1 else "")
    path.write_text(text.rstrip() + ("\n\n" if text.strip() else "") + "\n".join(lines) + "\n", encoding="utf-8")


def run(code_root: Path, events: Path, out: Path, memory: str, extra: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(code_root))  # and cwd: `python -c` puts the working directory first
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"events": str(events), "out": str(out),
                                                                    "memory": memory, "extra": extra})],
                          capture_output=True, text=True, env=env, check=False, cwd=code_root)
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode:
        raise SystemExit(f"benchmark child failed ({code_root}): {proc.stderr.strip().splitlines()[-3:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(args, rows: list, started: float) -> None:
    """Write the results so far (after each size: a long run keeps what it measured)."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    lines = [HEADER, "",
             f"Command: `python benchmarks/memory.py --sizes {args.sizes} --memory {args.memory}"
             f"{' --epochs ' + args.epochs if args.epochs else ''}{' --base BASE' if args.base else ''}`", "",
             *machine_lines(), f"- uptime at the end: {uptime}",
             f"- data: generated events, {ITEMS:,} items, {EVENTS_PER_USER} events per user, hive partitions by "
             "month; `catvec pretrain --memory MEM --holdout last` (tuning on, every other setting default)", "",
             *markdown_table(["events", "code", "wall s", "extraction s", "extraction us / event",
                              "s / event vs smallest", "peak RSS MiB", "RSS vs smallest", "tune s", "evaluate s",
                              "test HR@10", "test users", "same corpus as baseline"], rows),
             "", f"Total {time.perf_counter() - started:.0f} s."]
    write_section(Path(args.out), lines)
    print("\n".join(lines), flush=True)


def stages(args, sizes: list[int], work: Path) -> int:
    """Peak RSS of the tuner's sample plus the holdout tasks alone: the whole table read
    (the code before the split) against the split read a shard at a time, per size."""
    rows, started = [], time.perf_counter()
    for n in sizes:
        folder = work / f"events_{n}"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--generate", str(n), str(folder), ""],
                       check=True)
        for how in ("whole table", "split"):
            spec = {"events": str(folder), "memory": args.memory, "how": how, "tmp": str(work / "stages-split")}
            proc = subprocess.run([sys.executable, "-c", STAGES, json.dumps(spec)], capture_output=True, text=True,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
            if proc.returncode:
                raise SystemExit(f"benchmark child failed: {proc.stderr.strip().splitlines()[-3:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append([f"{n:,}", how, round(r["wall"], 1), r["rss_kb"] // 1024, r["sample"], r["users"]])
            print(rows[-1], flush=True)
    lines = [STAGES_HEADER, "", f"Command: `python benchmarks/memory.py --stages --sizes {args.sizes} --memory {args.memory}`",
             "", *machine_lines(), "", "Each row a fresh process: read the events (whole, or split into shard files), "
             "draw the tuner's sample (`--tune-events`), build the `--holdout last` tasks.", "",
             *markdown_table(["events", "read", "wall s", "peak RSS MiB", "sample events", "test users"], rows),
             "", f"Total {time.perf_counter() - started:.0f} s."]
    write_section(Path(args.out), lines)
    print("\n".join(lines), flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2M,8M,32M", help="event counts, comma list (M = million)")
    p.add_argument("--memory", default="512MB", help="--memory given to every run")
    p.add_argument("--epochs", default="", help="--epochs for every run (empty: chosen by the run, the default); "
                   "1 keeps a large run's training short, tuning still chooses the other settings")
    p.add_argument("--base", default="", help="a checkout of the baseline code (its repository root); empty: none")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results-scale.md"),
                   help="results file: its memory section is replaced (or appended)")
    p.add_argument("--only-base", action="store_true", help="run only the baseline code (to redo its rows)")
    p.add_argument("--stages", action="store_true", help="only the tuning sample and the holdout tasks, whole "
                   "table against split (this code)")
    args = p.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    codes = ([] if args.only_base else [("this", ROOT)]) + ([("baseline", Path(args.base).resolve())] if args.base else [])
    work = DATA / "scale"
    work.mkdir(parents=True, exist_ok=True)
    if args.stages:
        return stages(args, sizes, work)
    rows, first, started = [], {}, time.perf_counter()
    for n in sizes:
        folder = work / f"events_{n}"
        # in a subprocess: a child's peak RSS starts from its parent's RSS at fork time
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--generate", str(n), str(folder), ""],
                       check=True)
        shas = {}
        for label, root in codes:
            r = run(root, folder, work / "memory-out", args.memory, ["--epochs", args.epochs] if args.epochs else [])
            t = r["timings"]
            extract = t.get("read_seconds", 0) + t["extract_seconds"]
            first.setdefault(label, (r["rss_kb"], extract / n))
            rss0, per0 = first[label]
            shas[label] = r["sha"]
            rows.append([f"{n:,}", label, round(r["wall"], 1), round(extract, 2), round(extract / n * 1e6, 3),
                         round(extract / n / per0, 2), r["rss_kb"] // 1024, round(r["rss_kb"] / rss0, 2),
                         round(t.get("tune_seconds", 0), 1), round(t.get("evaluate_seconds", 0), 1),
                         round(r["hr"], 4), r["users"], "-"])
            print(rows[-1], r["chosen"], flush=True)
        if len(shas) > 1:
            rows[-1][-1] = "yes" if len(set(shas.values())) == 1 else "NO"
        report(args, rows, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Extraction at scale: wall time and peak memory of the local and Dask engines on
hive-partitioned Parquet (one partition per month) of 2M / 8M / 32M generated events with
the same item count, against the single-file path (one read, one `build_corpus`) at the
smallest size as the baseline of the same run. Every measurement runs in a fresh
subprocess that reports its own peak RSS (getrusage); the Dask rows start a `dask
scheduler` and two single-threaded `dask worker` processes on loopback for each size and
report the driver's peak and the largest worker's. Also checks that every engine wrote
the same corpus bytes as the single-file path at the smallest size.

    .venv/bin/python benchmarks/scale.py                       # 2M, 8M, 32M
    .venv/bin/python benchmarks/scale.py --sizes 2M,8M --memory 512MB
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_lines, markdown_table  # noqa: E402
from generate import DATA, generate_frame  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ITEMS = 30_000
EVENTS_PER_USER = 40

CHILD = r"""
import hashlib, json, resource, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
if args["mode"] == "single":
    from catvec.pretraining.corpus import build_corpus
    from catvec.pretraining.events import read_events
    corpus = build_corpus(read_events(args["events"]), args["out"])
else:
    from catvec.pretraining.config import EventOptions, Extraction, PretrainConfig, SequenceRules
    from catvec.pretraining.shards import extract_sharded
    cfg = PretrainConfig(events=args["events"], memory=args["memory"], engine=args["engine"],
                         scheduler=args.get("scheduler", ""))
    corpus = extract_sharded(EventOptions.of(cfg), SequenceRules.of(cfg), Extraction.of(cfg), args["out"])
wall = time.perf_counter() - t0
workers = 0
if args.get("scheduler"):
    from distributed import Client
    with Client(args["scheduler"], timeout="5s") as client:
        peaks = client.run(lambda: __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss)
        workers = max(peaks.values())
digest = hashlib.sha256()
with open(args["out"], "rb") as fh:  # in blocks: reading the corpus whole would add its size to the peak
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
sha = digest.hexdigest()[:16]
print(json.dumps({"wall": wall, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "worker_kb": workers,
                  "tokens": corpus.stats["tokens"], "sha": sha}))
"""


def parse_size(text: str) -> int:
    text = text.strip().upper()
    return int(float(text[:-1]) * 1_000_000) if text.endswith("M") else int(text)


def write_partitioned(n_events: int, folder: Path, single: Path | None) -> None:
    """Generated events as month partitions (month=YYYY-MM-01/part-0.parquet)."""
    import polars as pl

    if folder.is_dir() and (single is None or single.is_file()):
        return
    frame = generate_frame(n_events, ITEMS, max(1, n_events // EVENTS_PER_USER))
    if single is not None:
        frame.write_parquet(single)
    if folder.is_dir():
        return
    frame = frame.with_columns(month=pl.from_epoch("timestamp").dt.truncate("1mo").dt.date())
    tmp = folder.with_name(folder.name + ".tmp")
    for (month,), part in frame.group_by("month", maintain_order=True):
        target = tmp / f"month={month}"
        target.mkdir(parents=True, exist_ok=True)
        part.drop("month").write_parquet(target / "part-0.parquet")
    tmp.rename(folder)


def child(args: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, env=env,
                         check=False)
    if out.returncode:
        raise SystemExit(f"benchmark child failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Cluster:
    """A dask scheduler and two single-threaded workers on loopback."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs = []

    def __enter__(self) -> str:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        bin_dir = Path(sys.executable).parent
        info = self.tmp / "scheduler.json"
        info.unlink(missing_ok=True)
        self.procs.append(subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                            "--no-dashboard", "--scheduler-file", str(info)], env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(200):
            if info.is_file() and info.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            self.procs.append(subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nthreads", "1",
                                                "--no-dashboard", "--host", "127.0.0.1"], env=env,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="10s") as client:
            client.wait_for_workers(2, timeout=60)
        return address

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(timeout=30)
        return False


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2M,8M,32M", help="event counts, comma list (M = million)")
    p.add_argument("--memory", default="512MB", help="--memory given to the sharded runs")
    p.add_argument("--engines", default="local,dask")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results-scale.md"))
    p.add_argument("--generate", nargs=3, metavar=("N", "FOLDER", "SINGLE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.generate:
        n, folder, single = args.generate
        write_partitioned(int(n), Path(folder), Path(single) if single else None)
        return 0
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    engines = [e for e in args.engines.split(",") if e]
    work = DATA / "scale"
    work.mkdir(parents=True, exist_ok=True)
    rows, base, shas = [], None, {}
    started = time.perf_counter()
    for n in sizes:
        folder = work / f"events_{n}"
        single = work / f"events_{n}.parquet" if n == sizes[0] else None
        # in a subprocess: a child's peak RSS starts from its parent's RSS at fork time
        subprocess.run([sys.executable, __file__, "--generate", str(n), str(folder), str(single or "")], check=True)
        corpus = str(work / "corpus.txt")
        if n == sizes[0]:
            base = child({"mode": "single", "events": str(single), "out": corpus})
            rows.append([f"{n:,}", "single file (baseline)", 1, round(base["wall"], 2), 1.0, base["rss_kb"] // 1024, "-",
                         1.0, "-"])
            print(rows[-1], flush=True)
        for engine in engines:
            spec = {"mode": "sharded", "events": str(folder), "out": corpus, "memory": args.memory, "engine": engine}
            if engine == "dask":
                with Cluster(work) as address:
                    result = child({**spec, "scheduler": address})
            else:
                result = child(spec)
            from catvec.base.config import parse_size as bytes_of
            from catvec.pretraining.shards import shard_count

            # the smallest size is compared with the single-file corpus, the others with the local engine's
            reference = base["sha"] if n == sizes[0] else shas.get(n)
            shas.setdefault(n, result["sha"])
            same = "-" if reference is None else "yes" if result["sha"] == reference else "NO"
            rows.append([f"{n:,}", engine, shard_count(n, bytes_of(args.memory)), round(result["wall"], 2),
                         round(result["wall"] / base["wall"], 2), result["rss_kb"] // 1024,
                         result["worker_kb"] // 1024 or "-", round(result["rss_kb"] / base["rss_kb"], 2), same])
            print(rows[-1], flush=True)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    lines = ["# Extraction at scale (benchmarks/scale.py)", "",
             f"Command: `python benchmarks/scale.py --sizes {args.sizes} --memory {args.memory} "
             f"--engines {args.engines}`", "", *machine_lines(), f"- uptime at the end: {uptime}",
             f"- data: generated events, {ITEMS:,} items, {EVENTS_PER_USER} events per user, hive partitions by "
             "month; the single-file baseline is one Parquet file of the smallest size", "",
             *markdown_table(["events", "engine", "shards", "wall s", "wall / baseline", "peak RSS MiB (driver)",
                              "peak RSS MiB (largest worker)", "RSS / baseline", "same corpus (single file at the smallest size, else the first engine)"], rows),
             "", f"Total {time.perf_counter() - started:.0f} s."]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

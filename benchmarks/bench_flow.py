"""Wall time of the pretrain flow against `catvec pretrain` on the same events file.

A Prefect server is started first (its start is not timed); then the CLI and the flow run
alternately, each in a fresh process, each into its own output directory (so both read
and extract: no corpus cache is shared). Reported: wall time per run, the median ratio
flow / CLI (target: within 1.15x), and the pipeline's own step time from each manifest,
so the difference splits into process start and imports vs orchestration.

    .venv/bin/python benchmarks/bench_flow.py                     # the largest benchmarks/data/events_*.csv
    .venv/bin/python benchmarks/bench_flow.py --events my.csv --repeats 3 --epochs 5

The events file defaults to the largest benchmarks/data/events_*.csv; when there is none,
benchmarks/generate.py writes a 5M-event one there first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data"
RESULTS = REPO / "benchmarks" / "results"
TARGET = 1.15

sys.path.insert(0, str(REPO))
from flows.serve import start_server, stop_process, wait_for_server  # noqa: E402


def default_events() -> Path:
    found = sorted(DATA.glob("events_*.csv"), key=lambda p: p.stat().st_size)
    if found:
        return found[-1]
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "generate.py"), "--events", "5000000",
                    "--items", "30000"], check=True)
    return sorted(DATA.glob("events_*.csv"), key=lambda p: p.stat().st_size)[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{done.stderr[-3000:]}")
    return seconds


def step_seconds(out: Path) -> float:
    manifest = json.loads((out / "latest" / "manifest.json").read_text(encoding="utf-8"))
    return sum(v for k, v in manifest["timings"].items() if k.endswith("_seconds"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, help="events file (default: the largest benchmarks/data/events_*.csv)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each (alternating); the median is reported")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args(argv)
    events = (args.events or default_events()).resolve()
    options = {"events": str(events), "epochs": args.epochs, "dim": args.dim, "vector_map": False}

    work = Path(tempfile.mkdtemp(prefix="catvec-bench-flow-"))
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(work / "prefect-home"), PREFECT_API_URL=api_url,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
    print(f"events: {events} ({events.stat().st_size / 1e6:.0f} MB); epochs {args.epochs}, dim {args.dim}")
    server = start_server("127.0.0.1", port, env=env)
    rows = []
    try:
        wait_for_server(api_url, server)
        print(f"server up at {api_url}")
        catvec = str(Path(sys.executable).with_name("catvec"))
        for i in range(args.repeats):
            for kind in ("cli", "flow"):
                out = work / f"{kind}-{i}"
                if kind == "cli":
                    cmd = [catvec, "pretrain", "--quiet", "--out", str(out), "--events", str(events),
                           "--epochs", str(args.epochs), "--dim", str(args.dim), "--no-vector-map"]
                else:
                    call = f"from flows.pretrain import pretrain_flow; pretrain_flow(out={str(out)!r}, **{options!r})"
                    cmd = [sys.executable, "-c", call]
                seconds = timed(cmd, env)
                rows.append({"kind": kind, "run": i, "wall_seconds": round(seconds, 2),
                             "step_seconds": round(step_seconds(out), 2)})
                print(f"{kind:4s} run {i}: {seconds:7.2f} s wall, {rows[-1]['step_seconds']:7.2f} s in the steps",
                      flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        stop_process(server)
        shutil.rmtree(work, ignore_errors=True)

    cli = statistics.median(r["wall_seconds"] for r in rows if r["kind"] == "cli")
    flow = statistics.median(r["wall_seconds"] for r in rows if r["kind"] == "flow")
    ratio = flow / cli
    verdict = "within" if ratio <= TARGET else "OVER"
    # wall minus the steps: process start, imports, and for the flow the API calls and artifacts
    outside = {kind: statistics.median(r["wall_seconds"] - r["step_seconds"] for r in rows if r["kind"] == kind)
               for kind in ("cli", "flow")}
    print(f"\nmedian wall: CLI {cli:.2f} s, flow {flow:.2f} s, ratio {ratio:.3f} ({verdict} the {TARGET}x target)")
    print(f"outside the steps: CLI {outside['cli']:.2f} s, flow {outside['flow']:.2f} s "
          f"(the flow's fixed cost: {outside['flow'] - outside['cli']:.2f} s)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"events": str(events), "options": options, "runs": rows, "cli_seconds": cli, "flow_seconds": flow,
              "ratio": round(ratio, 4), "target": TARGET, "outside_steps_seconds": outside,
              "cpus": os.cpu_count()}
    (RESULTS / "bench_flow.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

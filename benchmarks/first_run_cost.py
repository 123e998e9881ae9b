"""What a default first run costs: `catvec pretrain` with tuning against a plain training.

For each data set and seed, in one process and one after the other (so all see the same
load), three runs of `pretrain` into fresh OUTs, all with a test holdout:

- halving: the default first run (`tune_search` halving: the candidates screened with a
  quarter of their epochs, then the fallback and the best of them at full epochs);
- full: the search before it (`--tune-search full`: five candidates at full epochs);
- plain: `--no-tune` given the settings the halving run chose (and, when full chose
  others, a second plain run with those), the training a user who knew them would run.

Reported: wall seconds (median over seeds), the ratios halving / plain and full / plain of
the same settings in wall and in CPU seconds of the process (all threads; less sensitive to
other work on a shared machine) (target halving / plain <= 2.0), and test HR@10 of both searches (target
halving >= 0.98x full, mean over seeds). Data: ml-latest-small (read from ../shared,
`--holdout last`; skipped when absent) and the bundled data/baskets.csv (basket mode,
`--holdout basket`). The load average is printed with the machine. Writes
benchmarks/results-first-run-cost.md.

    .venv/bin/python benchmarks/first_run_cost.py              # both data sets, 3 seeds
    .venv/bin/python benchmarks/first_run_cost.py --seeds 1 --data baskets
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, machine_lines, markdown_table, movielens_config, movielens_dir

OUT = REPO / "benchmarks" / "results-first-run-cost.md"
SHOWN = ("window", "epochs", "ns_exponent", "sample", "scorer", "min_support")


def data_sets(names: list[str]) -> dict:
    """name -> PretrainConfig of a default first run with a test holdout."""
    out = {}
    if "movielens" in names and movielens_dir(required=False) is not None:
        out["ml-latest-small"] = movielens_config(holdout="last")
    elif "movielens" in names:
        print("ml-latest-small not found at ../shared/data/ml-latest-small: left out", file=sys.stderr)
    if "baskets" in names:
        out["data/baskets.csv"] = movielens_config(events=str(REPO / "data" / "baskets.csv"), user_col="",
                                                   item_col="item_id", time_col="", basket_col="order_id",
                                                   holdout="basket")
    return out


def timed_run(cfg, out: Path) -> dict:
    from catvec.pretraining.pipeline import pretrain

    t, cpu = time.perf_counter(), time.process_time()
    manifest = pretrain(dataclasses.replace(cfg, out=str(out))).manifest
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    tuning = manifest.get("tuning") or {}
    return {"seconds": seconds, "cpu": cpu, "hr": manifest["quality"]["vectors"]["test"]["hr"],
            "chosen": {k: manifest["params"][k] for k in SHOWN if k in manifest["params"]} | {
                k: manifest["scoring"][k] for k in ("scorer", "min_support")},
            "trainings": len(tuning.get("trials", [])), "tune_seconds": tuning.get("seconds", 0.0)}


def one_seed(base, seed: int, tmp: Path) -> dict:
    cfg = dataclasses.replace(base, seed=seed)
    if seed == 1:  # imports and first-call costs, untimed
        timed_run(dataclasses.replace(cfg, tune=False, epochs=1), tmp / "warm-up")
    halving = timed_run(cfg, tmp / f"halving-{seed}")
    full = timed_run(dataclasses.replace(cfg, tune_search="full"), tmp / f"full-{seed}")
    plain = {}
    for name, run in (("halving", halving), ("full", full)):
        key = tuple(sorted(run["chosen"].items()))
        if key not in plain:
            plain[key] = timed_run(dataclasses.replace(cfg, tune=False, **run["chosen"]), tmp / f"plain-{name}-{seed}")
        run["plain"] = plain[key]
    print(f"  seed {seed}: halving {halving['seconds']:.1f}s HR@10 {halving['hr']:.4f} {halving['chosen']}; "
          f"full {full['seconds']:.1f}s HR@10 {full['hr']:.4f} {full['chosen']}; "
          f"plain {halving['plain']['seconds']:.1f}s", file=sys.stderr, flush=True)
    return {"halving": halving, "full": full}


def summary(name: str, runs: list[dict]) -> list[str]:
    rows = []
    for search in ("halving", "full"):
        r = [run[search] for run in runs]
        ratios = [x["seconds"] / x["plain"]["seconds"] for x in r]
        cpu = [x["cpu"] / x["plain"]["cpu"] for x in r]
        rows.append([search, f"{statistics.median(x['seconds'] for x in r):.1f}",
                     f"{statistics.median(x['tune_seconds'] for x in r):.1f}",
                     f"{statistics.median(x['plain']['seconds'] for x in r):.1f}",
                     f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
                     f"{statistics.median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f})",
                     f"{statistics.mean(x['hr'] for x in r):.4f} ({min(x['hr'] for x in r):.4f}-"
                     f"{max(x['hr'] for x in r):.4f})", r[0]["trainings"]])
    hr = {s: statistics.mean(run[s]["hr"] for run in runs) for s in ("halving", "full")}
    out = [f"### {name}", ""]
    out += markdown_table(["search", "first run s", "of it tuning s", "plain s", "first run / plain (wall)",
                           "(CPU seconds)", "test HR@10", "tuning trainings"], rows)
    out += ["", f"- halving / full: test HR@10 {hr['halving'] / hr['full']:.3f}x (target >= 0.98)"]
    for search in ("halving", "full"):
        out.append(f"- {search} chose: " + "; ".join(
            f"seed {i + 1}: " + ", ".join(f"{k}={v}" for k, v in run[search]["chosen"].items())
            for i, run in enumerate(runs)))
    return out + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", default="movielens,baskets", help="comma list of movielens, baskets")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    out = ["# First default run against a plain training", "",
           f"`.venv/bin/python benchmarks/first_run_cost.py --seeds {args.seeds} --data {args.data}`", "",
           "- load average at the start {:.1f} / {:.1f} / {:.1f} (1/5/15 min)".format(*load_before), *machine_lines(), ""]
    with tempfile.TemporaryDirectory(prefix="catvec-first-run-") as tmp:
        for name, base in data_sets(args.data.split(",")).items():
            print(name, file=sys.stderr, flush=True)
            runs = [one_seed(base, seed, Path(tmp) / name.replace("/", "_")) for seed in range(1, args.seeds + 1)]
            out += summary(name, runs)
    OUT.write_text("\n".join(out))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

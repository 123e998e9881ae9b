"""A nightly refresh on real data: is the new version aligned, does the gate tell signal from
noise, and does a warm start help?

MovieLens ml-latest-small ratings split by time at the 80th percentile of timestamps:
the older slice (events before it) is the first night, every event the second night.

1. `pretrain` on the older slice -> v1; `pretrain` on every event (another seed) into the
   same OUT -> v2: aligned to v1 and judged by the gate against the seed-noise baseline;
   the same with `--retune` (settings chosen again instead of kept from v1);
2. every event with the item column shuffled across rows (no signal left) -> refused?
3. warm start vs cold start on every event with v1 as parent, the settings v2 chose fixed
   (`--no-tune`): held-out HR@10, drift and training time per number of epochs.

All runs use `--holdout last`. Writes its tables into docs/lifecycle.md between markers.

    .venv/bin/python benchmarks/lifecycle.py            # about 6-10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_lines, markdown_table, movielens_config, movielens_dir  # noqa: E402
from vectors_quality import write_between_markers  # noqa: E402

DOC = REPO / "docs" / "lifecycle.md"
MARKERS = ("<!-- lifecycle:begin -->", "<!-- lifecycle:end -->")
SPLIT_QUANTILE = 0.8

def write_inputs(work: Path):
    """MovieLens ratings and three inputs in `work`: older (before the SPLIT_QUANTILE time
    quantile), all, and all with the items shuffled across rows. Returns (ratings, paths)."""
    import pandas as pd

    ratings = pd.read_csv(movielens_dir() / "ratings.csv")
    older = ratings[ratings["timestamp"] < ratings["timestamp"].quantile(SPLIT_QUANTILE)]
    paths = {"older": work / "older.csv", "all": work / "all.csv", "shuffled": work / "shuffled.csv"}
    older.to_csv(paths["older"], index=False)
    ratings.to_csv(paths["all"], index=False)
    shuffled = ratings.copy()
    shuffled["movieId"] = np.random.default_rng(0).permutation(shuffled["movieId"].to_numpy())
    shuffled.to_csv(paths["shuffled"], index=False)
    return ratings, paths



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the warm / cold comparison")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/lifecycle.md alone")
    args = parser.parse_args()
    if movielens_dir() is None:
        return 0
    from catvec.pretraining.pipeline import pretrain

    work = Path(tempfile.mkdtemp(prefix="catvec-lifecycle-"))
    try:
        ratings, paths = write_inputs(work)
        cut = ratings["timestamp"].quantile(SPLIT_QUANTILE)
        n_older = int((ratings["timestamp"] < cut).sum())

        out = work / "nightly"
        config = lambda name, **kw: movielens_config(events=str(paths[name]), out=str(out), holdout="last", **kw)  # noqa: E731
        v1 = pretrain(config("older", seed=1))
        parent_dir = work / "after-v1"
        shutil.copytree(out, parent_dir, symlinks=True)
        v2 = pretrain(config("all", seed=2))
        v3 = pretrain(config("shuffled", seed=3))
        retuned_out = work / "retuned"
        shutil.copytree(parent_dir, retuned_out, symlinks=True)
        retuned = pretrain(dataclasses.replace(config("all", seed=2), out=str(retuned_out), retune=True))
        runs = [("v1: older slice", n_older, v1), ("v2: every event", len(ratings), v2),
                ("v3: every event, items shuffled", len(ratings), v3),
                ("v2 tuned afresh (`--retune`), for comparison", len(ratings), retuned)]

        chosen = v2.manifest["params"]
        fixed = {name: chosen[name] for name in ("window", "epochs", "ns_exponent", "sample", "scorer", "min_support")}
        warm_rows = []
        for seed in range(2, 2 + args.seeds):
            for warm, fraction in ((False, 1.0), (False, 0.5), (True, 1.0), (True, 0.5), (True, 0.25)):
                epochs = max(1, round(fixed["epochs"] * fraction))
                target = work / f"wc-{seed}-{warm}-{epochs}"
                shutil.copytree(parent_dir, target, symlinks=True)
                cfg = movielens_config(events=str(paths["all"]), out=str(target), holdout="last", tune=False, seed=seed,
                                       **dict(fixed, epochs=epochs), warm_start=warm)
                t = time.perf_counter()
                result = pretrain(cfg)
                warm_rows.append({"warm": warm, "epochs": epochs, "seed": seed, "seconds": time.perf_counter() - t,
                                  "manifest": result.manifest})
                shutil.rmtree(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    text = "\n".join(report(runs, warm_rows, fixed, cut, n_older, len(ratings)))
    print(text)
    if not args.no_write:
        write_between_markers(DOC, text, MARKERS)
    return 0


def report(runs, warm_rows, fixed: dict, cut: float, n_older: int, n_all: int) -> list[str]:
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(cut, timezone.utc).date().isoformat()
    lines = [f"MovieLens ml-latest-small, split at the {SPLIT_QUANTILE:.0%} time quantile ({when}): "
             f"{n_older:,} older events, {n_all:,} in all. `python benchmarks/lifecycle.py`.", "",
             "**Three nights into one OUT** (defaults, `--holdout last`; the last row is v2 again with "
             "`--retune`, into a copy of OUT holding v1 only):", ""]
    rows = []
    for label, n_events, result in runs:
        m = result.manifest
        align = m.get("alignment") or {}
        drift = m.get("drift") or {}
        noise = (drift.get("noise") or {}).get("anchors", {})
        test = (m.get("quality") or {}).get("vectors", {}).get("test", {})
        parent_test = (m.get("parent_quality") or {}).get("vectors", {}).get("test", {})
        rows.append([label, f"{n_events:,}", align.get("anchors", "-"), align.get("median_cosine_before", "-"),
                     align.get("median_cosine", "-"), (drift.get("anchors") or {}).get("overlap", "-"),
                     noise.get("overlap", "-"), drift.get("overlap_ratio", "-"), test.get("hr", "-"),
                     parent_test.get("hr", "-"), _verdict(result)])
    lines += markdown_table(["run", "events", "anchors", "median cos before", "after alignment",
                             "overlap@10 with parent", "seed-noise overlap", "ratio", "HR@10", "parent HR@10 (same items)",
                             "gate"], rows)
    bands = (runs[1][2].manifest.get("drift") or {}).get("bands", {})
    noise_bands = ((runs[1][2].manifest.get("drift") or {}).get("noise") or {}).get("bands", {})
    lines += ["", "v2 against v1 per frequency band (count in v2), beside the seed-noise baseline:", ""]
    lines += markdown_table(["band", "keys", "overlap@10", "noise overlap@10", "aligned cosine", "noise cosine"],
                            [[name, b["keys"], b["overlap"], noise_bands.get(name, {}).get("overlap", "-"), b["cosine"],
                              noise_bands.get(name, {}).get("cosine", "-")] for name, b in bands.items()])
    d2 = runs[1][2].manifest.get("drift") or {}
    lines += ["", f"New keys in v2: {d2.get('new')} ({_pct(d2.get('new_traffic'))} of its traffic); "
                  f"dropped: {d2.get('dropped')} ({_pct(d2.get('dropped_traffic'))} of v1's).", ""]
    lines += [f"**Warm start vs cold start** on every event with v1 as parent, v2's settings fixed "
              f"({', '.join(f'{k} {v}' for k, v in fixed.items())}); mean over {len({r['seed'] for r in warm_rows})} seeds:", ""]
    groups = {}
    for row in warm_rows:
        groups.setdefault((row["warm"], row["epochs"]), []).append(row)
    table = []
    for (warm, epochs), group in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        def mean(get):
            values = [get(r["manifest"]) for r in group]
            values = [v for v in values if v is not None]
            return float(np.mean(values)) if values else "-"
        table.append(["warm" if warm else "cold", epochs,
                      mean(lambda m: m["quality"]["vectors"]["test"]["hr"]),
                      mean(lambda m: (m.get("alignment") or {}).get("median_cosine_before")),
                      mean(lambda m: (m.get("alignment") or {}).get("median_cosine")),
                      mean(lambda m: (m.get("drift") or {}).get("overlap_ratio")),
                      mean(lambda m: m["training"]["train_seconds"])])
    lines += markdown_table(["start", "epochs", "HR@10", "median cos before alignment", "after", "drift ratio",
                             "train seconds"], table)
    lines += ["", *machine_lines()]
    return lines


def _verdict(result) -> str:
    if result.gate is None:
        return "first version"
    if result.promoted:
        return "promoted"
    return "refused: " + "; ".join(result.gate["reasons"])


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


if __name__ == "__main__":
    sys.exit(main())

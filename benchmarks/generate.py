"""Generate a synthetic events file for the benchmarks (written under benchmarks/data/).

Users walk through clusters of items with Zipf-like popularity, so the file looks like a
behaviour log (skewed item counts, histories of varied length, some immediate repeats)
and training has structure to learn. Seeded: the same arguments give the same file.

    .venv/bin/python benchmarks/generate.py --events 5000000 --items 30000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"


def generate(path: Path, n_events: int, n_items: int, n_users: int, seed: int = 0) -> Path:
    frame = generate_frame(n_events, n_items, n_users, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path


def generate_frame(n_events: int, n_items: int, n_users: int, seed: int = 0):
    """The events of `generate` as a polars frame (user_id, item_id, timestamp)."""
    import polars as pl

    rng = np.random.default_rng(seed)
    n_clusters = max(1, n_items // 100)
    # Each user has a favourite cluster; each event stays in it with p=0.8, else jumps anywhere.
    lengths = rng.geometric(1 / (n_events / n_users), size=n_users)
    lengths = np.maximum(1, np.round(lengths * n_events / lengths.sum())).astype(np.int64)
    lengths[-1] += n_events - lengths.sum()
    if lengths[-1] < 1:  # rounding took too much from the last user: give it back evenly
        lengths[-1] = 1
    user = np.repeat(np.arange(n_users), lengths)[:n_events]
    n = len(user)
    home = rng.integers(n_clusters, size=n_users)[user]
    cluster = np.where(rng.random(n) < 0.8, home, rng.integers(n_clusters, size=n))
    rank = np.minimum(rng.zipf(1.3, size=n) - 1, 99)           # popular items within a cluster
    item = cluster * 100 + rank
    item = np.minimum(item, n_items - 1)
    start = rng.integers(1_600_000_000, 1_700_000_000, size=n_users)[user]
    step = np.cumsum(rng.integers(1, 600, size=n))
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])[user]
    t = start + step - (step[first] if n else 0)
    order = rng.permutation(n)                                   # logs are rarely sorted
    frame = pl.DataFrame({"user_id": np.char.add("u", user[order].astype(str)),
                          "item_id": (item[order] + 100000).astype(np.int64),
                          "timestamp": t[order].astype(np.int64)})
    return frame


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=5_000_000)
    p.add_argument("--items", type=int, default=30_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output CSV (default: benchmarks/data/events_<N>.csv)")
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else DATA / f"events_{args.events}.csv"
    t = time.perf_counter()
    generate(out, args.events, args.items, args.users, args.seed)
    print(f"{out} ({out.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

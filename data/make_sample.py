"""Generate the bundled sample: events with planted item clusters, and a labeled table.

Deterministic (seeded). Run from the repository root:  python data/make_sample.py

The files are written to catvec/data/, package data that ships in the wheel (an installed
`catvec pretrain` trains on it when no --events is given); the data/*.csv beside this script
are links to them, so the paths below work in a checkout.

- data/events.csv  user_id,item_id,timestamp (epoch seconds). 8 clusters of 25 items
  (item ids 1000-1199, cluster = (id - 1000) // 25). Each user has 1-4 sessions; a session
  stays in one cluster (90% of its events), sessions are days apart, events minutes apart.
- data/items.csv   item_id,genre: the cluster name of each item (for pictures and tests).
- data/labels.csv  a labeled table on the same items for `catvec finetune`: item_id,
  channel (categorical), price, quantity (continuous), spend (regression target) and
  segment (multiclass target: the cluster name). Only 40% of items appear in it.
- data/baskets.csv order_id,item_id: 3,000 grocery-like orders for basket mode. Each holds
  1-3 staples (s00-s19, Zipf-popular), with probability 0.8 one planted complement pair
  (p00a + p00b ... p39a + p39b) and 0-1 of 100 rarely bought fillers (f000-f099).
"""

from pathlib import Path

import numpy as np

N_CLUSTERS, PER_CLUSTER, N_USERS, SEED = 8, 25, 400, 7
GENRES = ["action", "comedy", "drama", "horror", "jazz", "kids", "sci-fi", "sports"]
START = 1_700_000_000  # 2023-11-14


def make_events(rng):
    rows = []
    for user in range(N_USERS):
        t = START + int(rng.integers(0, 30 * 86400))
        favourite = rng.integers(N_CLUSTERS)
        for _ in range(int(rng.integers(1, 5))):
            cluster = favourite if rng.random() < 0.6 else rng.integers(N_CLUSTERS)
            for _ in range(int(rng.integers(4, 13))):
                c = cluster if rng.random() < 0.9 else rng.integers(N_CLUSTERS)
                item = 1000 + c * PER_CLUSTER + int(rng.integers(PER_CLUSTER))
                rows.append((f"u{user:04d}", item, t))
                t += int(rng.integers(30, 600))
            t += int(rng.integers(1, 10) * 86400)
    return rows


def make_labels(rng):
    items = np.arange(1000, 1000 + N_CLUSTERS * PER_CLUSTER)
    labeled = rng.choice(items, size=int(0.4 * len(items)), replace=False)
    effect = np.linspace(-2.0, 2.0, N_CLUSTERS)
    rows = []
    for _ in range(1500):
        item = int(rng.choice(labeled))
        cluster = (item - 1000) // PER_CLUSTER
        channel = ["web", "app", "store"][int(rng.integers(3))]
        price = round(float(rng.lognormal(3.0, 0.5)), 2)
        quantity = int(rng.integers(1, 6))
        spend = 10 + 3 * effect[cluster] + 0.05 * price + 0.5 * quantity + float(rng.normal(0, 0.5))
        rows.append((item, channel, price, quantity, round(spend, 3), GENRES[cluster]))
    return rows


def make_baskets(rng, n_orders=3000):
    staples = [f"s{i:02d}" for i in range(20)]
    weights = 1.0 / np.arange(1, 21)
    weights /= weights.sum()
    rows = []
    for order in range(n_orders):
        items = list(rng.choice(staples, size=int(rng.integers(1, 4)), replace=False, p=weights))
        if rng.random() < 0.8:
            pair = int(rng.integers(40))
            items += [f"p{pair:02d}a", f"p{pair:02d}b"]
        if rng.random() < 0.5:
            items.append(f"f{int(rng.integers(100)):03d}")
        rows += [(f"o{order:05d}", item) for item in items]
    return rows


def main(out=Path(__file__).resolve().parent.parent / "catvec" / "data"):
    rng = np.random.default_rng(SEED)
    with open(out / "events.csv", "w", newline="\n") as fh:
        fh.write("user_id,item_id,timestamp\n")
        fh.writelines(f"{u},{i},{t}\n" for u, i, t in make_events(rng))
    with open(out / "items.csv", "w", newline="\n") as fh:
        fh.write("item_id,genre\n")
        fh.writelines(f"{i},{GENRES[(i - 1000) // PER_CLUSTER]}\n" for i in range(1000, 1000 + N_CLUSTERS * PER_CLUSTER))
    with open(out / "labels.csv", "w", newline="\n") as fh:
        fh.write("item_id,channel,price,quantity,spend,segment\n")
        fh.writelines(",".join(map(str, r)) + "\n" for r in make_labels(rng))
    with open(out / "baskets.csv", "w", newline="\n") as fh:  # its own generator: the files above stay as they were
        fh.write("order_id,item_id\n")
        fh.writelines(f"{o},{i}\n" for o, i in make_baskets(np.random.default_rng(SEED + 1)))


if __name__ == "__main__":
    main()

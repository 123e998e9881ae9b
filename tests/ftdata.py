"""Small seeded data for the finetune tests: clustered item vectors and a labeled table."""

from pathlib import Path

import numpy as np

N_CLUSTERS, PER_CLUSTER, DIM = 6, 10, 8


def item_vectors(seed: int = 0):
    """Vectors for items 500..559: one direction per cluster plus a little noise."""
    from catvec.base.vectors import Vectors

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((N_CLUSTERS, DIM)) * 2
    keys, rows = [], []
    for item in range(500, 500 + N_CLUSTERS * PER_CLUSTER):
        keys.append(str(item))
        rows.append(centers[(item - 500) // PER_CLUSTER] + 0.3 * rng.standard_normal(DIM))
    return Vectors(keys=keys, matrix=np.asarray(rows, dtype=np.float32))


def labeled_rows(n: int = 400, seed: int = 1, labeled_share: float = 0.5):
    """A pandas DataFrame: item_id, color, x, y (regression), segment (multiclass), big (binary)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    items = np.arange(500, 500 + N_CLUSTERS * PER_CLUSTER)
    labeled = rng.choice(items, size=int(labeled_share * len(items)), replace=False)
    effect = np.linspace(-2, 2, N_CLUSTERS)
    item = rng.choice(labeled, size=n)
    cluster = (item - 500) // PER_CLUSTER
    x = rng.normal(size=n)
    y = 5 + 2 * effect[cluster] + 0.5 * x + rng.normal(0, 0.2, size=n)
    return pd.DataFrame({"item_id": item, "color": rng.choice(["red", "green", "blue"], size=n),
                         "x": np.round(x, 4), "y": np.round(y, 4),
                         "segment": [f"s{c}" for c in cluster], "big": np.where(effect[cluster] > 0, "yes", "no")})


def write_inputs(tmp_path: Path, n: int = 400):
    """-> (weight dir, labels.csv) under tmp_path."""
    from catvec.base.vectors import save_vectors

    vectors_dir = save_vectors(item_vectors(), tmp_path / "vectors" / "v1", {"kind": "pretrain"})
    table = tmp_path / "labels.csv"
    labeled_rows(n).to_csv(table, index=False)
    return vectors_dir, table


def finetune_config(inputs, **settings):
    """A validated FinetuneConfig on write_inputs' weight dir and table (settings win)."""
    from catvec.base.config import build_config
    from catvec.finetuning.config import FinetuneConfig

    vectors_dir, table = inputs
    return build_config(FinetuneConfig, **{"vectors": str(vectors_dir), "table": str(table), **settings})

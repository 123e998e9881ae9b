"""Per-key target statistics: what a GBM learns from raw ids, as continuous inputs.

A gradient-boosted model given a user id learns that user's own rate of positives; an MLP
on pretrained vectors sees only what the vectors carry (who co-occurs with whom), not how a
key's rows were labeled. `--key-stats` gives the model the labels' statistics per key, as
CatBoost's target statistics do: for each categorical column, the smoothed share of
positives (binary, as a logit) or the smoothed mean target (regression, standardised) among
the training rows with the row's key, and log(1 + that key's count of training rows), both
appended to the continuous features (and scaled with them).

Training rows get out-of-fold values (KEY_STATS_FOLDS folds: a row's own label never feeds
its feature, or the model would learn to trust a leak); validation, test and predicted rows
get the values of all training rows. The sums and counts per vocab row are saved in the
model dir (keystats.safetensors) so `catvec predict` computes the same features.

    stats = fit_key_stats(x_cat_train, y_train, sizes, task)      # from the training rows
    x_train_stats = out_of_fold(x_cat_train, y_train, sizes, task, seed)   # (n_train, 2 n_cat)
    x_other_stats = stats.features(x_cat_other)                   # (n, 2 n_cat)

Measured on MovieLens liked (docs/finetune.md "catvec or a GBM?").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEY_STATS_FOLDS = 5
SMOOTHING = 10.0            # pseudo-rows at the prior: a key seen once moves little
KEY_STATS_TASKS = ("binary", "regression")


@dataclass
class KeyStats:
    """Target sums and row counts per vocab row of each categorical column (training rows)."""

    task: str
    prior: float                   # mean target of the training rows (binary: share of class 1)
    sums: list[np.ndarray]         # per categorical column: (len(vocab),) float64
    counts: list[np.ndarray]       # per categorical column: (len(vocab),) float64

    def features(self, x_cat: np.ndarray) -> np.ndarray:
        """(n, n_cat) vocab rows -> (n, 2 n_cat) float64: each column's statistic of the row's
        key, then log(1 + its count of training rows)."""
        n_cat = x_cat.shape[1]
        out = np.empty((len(x_cat), 2 * n_cat), dtype=np.float64)
        for j, (s, c) in enumerate(zip(self.sums, self.counts)):
            out[:, j] = _smoothed(s[x_cat[:, j]], c[x_cat[:, j]], self.prior, self.task)
            out[:, n_cat + j] = np.log1p(c[x_cat[:, j]])
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """For safetensors: the prior, then sums.<j> and counts.<j> per categorical column j."""
        arrays = {"prior": np.array([self.prior])}
        for j, (s, c) in enumerate(zip(self.sums, self.counts)):
            arrays[f"sums.{j}"], arrays[f"counts.{j}"] = s, c
        return arrays

    @classmethod
    def from_arrays(cls, task: str, arrays: dict[str, np.ndarray]) -> "KeyStats":
        n = sum(1 for k in arrays if k.startswith("sums."))
        return cls(task, float(arrays["prior"][0]), [arrays[f"sums.{j}"] for j in range(n)],
                   [arrays[f"counts.{j}"] for j in range(n)])


def key_stats_enabled(setting: str, task: str) -> bool:
    """--key-stats auto: on for binary and regression targets, never for multiclass; off: never."""
    return setting != "off" and task in KEY_STATS_TASKS


def fit_key_stats(x_cat: np.ndarray, y: np.ndarray, sizes: list[int], task: str) -> KeyStats:
    """Training rows (n, n_cat) and targets (n,) -> KeyStats over vocabs of `sizes` rows."""
    y = np.asarray(y, dtype=np.float64)
    prior = float(y.mean()) if len(y) else 0.0
    sums = [np.bincount(x_cat[:, j], weights=y, minlength=n).astype(np.float64) for j, n in enumerate(sizes)]
    counts = [np.bincount(x_cat[:, j], minlength=n).astype(np.float64) for j, n in enumerate(sizes)]
    return KeyStats(task, prior, sums, counts)


def out_of_fold(x_cat: np.ndarray, y: np.ndarray, sizes: list[int], task: str, seed: int) -> np.ndarray:
    """Statistics for the training rows themselves, each from the other folds only: (n, 2 n_cat)."""
    fold = np.random.default_rng(seed).integers(0, KEY_STATS_FOLDS, len(y))
    out = np.empty((len(y), 2 * x_cat.shape[1]), dtype=np.float64)
    full = fit_key_stats(x_cat, y, sizes, task)
    for f in range(KEY_STATS_FOLDS):
        rows = fold == f
        if not rows.any():
            continue
        held = fit_key_stats(x_cat[rows], y[rows], sizes, task)
        rest = len(y) - rows.sum()
        prior = (full.prior * len(y) - held.prior * rows.sum()) / rest if rest else full.prior
        others = KeyStats(task, float(prior), [s - h for s, h in zip(full.sums, held.sums)],
                          [c - h for c, h in zip(full.counts, held.counts)])
        out[rows] = others.features(x_cat[rows])
    return out


def key_stat_columns(x_cat: np.ndarray, y: np.ndarray, train: np.ndarray, sizes: list[int], task: str,
                     seed: int) -> tuple[KeyStats, np.ndarray]:
    """All rows (n, n_cat), targets in model units (n,), training-row mask (n,) ->
    (KeyStats of the training rows, (n, 2 n_cat) columns: out of fold on the training rows)."""
    stats = fit_key_stats(x_cat[train], y[train], sizes, task)
    columns = stats.features(x_cat)
    columns[train] = out_of_fold(x_cat[train], y[train], sizes, task, seed)
    return stats, columns


def _smoothed(sums: np.ndarray, counts: np.ndarray, prior: float, task: str) -> np.ndarray:
    mean = (sums + SMOOTHING * prior) / (counts + SMOOTHING)
    if task != "binary":
        return mean
    mean = np.clip(mean, 1e-3, 1 - 1e-3)
    return np.log(mean / (1 - mean))

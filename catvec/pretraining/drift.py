"""How far a version moved from its parent (or from another seed): neighbour overlap and
cosine per frequency band, over the anchors, and the keys that came and went.

    drift_report(vectors, parent, min_count, noise)   compare + key_changes, beside the seed noise
    neighbour_overlap(a, b, queries)                  |top-10(a) & top-10(b)| / 10 per query key
"""

from __future__ import annotations

import numpy as np

from catvec.base.vectors import Vectors
from catvec.pretraining.alignment import anchor_rows, median_cosine, shared_rows

NEIGHBOURS = 10
# Frequency bands by training count: (label, lowest count, highest count or None).
BANDS = (("1-4", 1, 4), ("5-19", 5, 19), ("20-99", 20, 99), ("100+", 100, None))
# Keys whose neighbour lists are compared, a fixed sample: ranking one key's neighbours costs
# a pass over every key, so the sample, not the vocabulary, bounds the work. 600 anchors
# put the gate's mean overlap within about +-0.01 (standard error), 200 a band's within +-0.02.
MAX_QUERIES = 200           # per frequency band
MAX_ANCHOR_QUERIES = 600    # anchors: the figure the gate reads
MIN_BLOCK = 64              # queries ranked at once: at least this many, else `dim` (scores within keys x dim)


def neighbour_overlap(a: np.ndarray, b: np.ndarray, queries: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """For each query row, |top-k(a) & top-k(b)| / k, neighbours by cosine among all rows of
    `a` and `b` (two matrices over the same keys in the same order; the query left out).
    Batched: never a keys x keys matrix, memory O(keys x dim) (see `query_block`)."""
    return _overlaps(_unit_t(a), _unit_t(b), np.asarray(queries, dtype=np.int64), k)


def query_block(dim: int) -> int:
    """Queries ranked at once: their (block, keys) scores are no bigger than one (keys, dim)
    matrix for dim >= MIN_BLOCK, and blocks stay big enough for a fast matrix product."""
    return max(MIN_BLOCK, dim)


def _overlaps(ta: np.ndarray, tb: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """neighbour_overlap on unit rows stored transposed, (dim, keys): a faster product."""
    n = ta.shape[1]
    if len(queries) == 0:
        return np.zeros(0)
    k = min(k, n - 1)
    if k < 1:
        return np.ones(len(queries))
    out = np.empty(len(queries))
    step = query_block(ta.shape[0])
    for lo in range(0, len(queries), step):
        q = queries[lo:lo + step]
        in_a = _top_mask(ta[:, q].T @ ta, q, k)     # (block, dim) @ (dim, keys) -> (block, keys) bool
        in_b = _top_mask(tb[:, q].T @ tb, q, k)
        out[lo:lo + len(q)] = np.minimum(np.count_nonzero(in_a & in_b, axis=1), k) / k
    return out


def _unit_t(m: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, transposed: (keys, dim) -> (dim, keys), contiguous."""
    m = np.asarray(m, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.ascontiguousarray((m / np.where(norms > 0, norms, 1.0)).T)


def _top_mask(scores: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Each row's k highest scores, the query's own column left out (in place), as a mask: a
    partition for the k-th score, then a comparison; cheaper than ranking the indices."""
    scores[np.arange(len(queries)), queries] = -np.inf
    kth = np.partition(scores, scores.shape[1] - k, axis=1)[:, scores.shape[1] - k, None]
    return scores >= kth


def band_of(counts: np.ndarray) -> np.ndarray:
    """Index into BANDS of each count."""
    labels = np.zeros(len(counts), dtype=np.int64)
    for i, (_, lo, _hi) in enumerate(BANDS):
        labels[counts >= lo] = i
    return labels


def _median_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return round(median_cosine(a, b), 4)


def compare(vectors: Vectors, other: Vectors, min_count: int, seed: int = 0) -> dict:
    """Per frequency band (by `vectors`' counts), over the keys both hold: mean neighbour
    overlap@10 and median cosine (meaningful when `vectors` is aligned to `other`); and
    the same over the anchors (seen >= min_count times in both), the number the gate reads."""
    mine, theirs = shared_rows(vectors, other)
    a, b = vectors.matrix[mine], other.matrix[theirs]
    same_space = a.shape[1] == b.shape[1]  # another dimension: overlaps only, no cosine
    counts = vectors.counts[mine] if vectors.counts is not None else np.full(len(mine), 10 ** 9)
    rng = np.random.default_rng(seed)
    labels = band_of(counts)
    samples = {}
    for i, (name, _, _) in enumerate(BANDS):
        rows = np.flatnonzero(labels == i)
        if len(rows):
            samples[name] = (len(rows), np.sort(rng.choice(rows, MAX_QUERIES, replace=False))
                             if len(rows) > MAX_QUERIES else rows)
    anchor_mine, _ = anchor_rows(vectors, other, min_count)
    anchors = np.flatnonzero(np.isin(mine, anchor_mine))  # positions in `mine`, which is in vectors' order
    if len(anchors) > MAX_ANCHOR_QUERIES:
        anchors = np.sort(rng.choice(anchors, MAX_ANCHOR_QUERIES, replace=False))
    # Each sampled key's neighbour lists ranked once, shared by its band and the anchors.
    queries = np.unique(np.concatenate([s for _, s in samples.values()] + [anchors]).astype(np.int64))
    overlap = _overlaps(_unit_t(a), _unit_t(b), queries, NEIGHBOURS)
    mean_overlap = lambda rows: round(float(overlap[np.searchsorted(queries, rows)].mean()), 4)  # noqa: E731
    bands = {name: {"keys": int(n), "overlap": mean_overlap(sample),
                    "cosine": _median_cosine(a[sample], b[sample]) if same_space else None}
             for name, (n, sample) in samples.items()}
    anchor = {"keys": int(len(anchor_mine)),
              "overlap": mean_overlap(anchors) if len(anchors) else None,
              "cosine": _median_cosine(a[anchors], b[anchors]) if len(anchors) and same_space else None}
    return {"shared_keys": int(len(mine)), "bands": bands, "anchors": anchor}


def key_changes(vectors: Vectors, parent: Vectors) -> dict:
    """New keys (not in the parent) and dropped keys (not in the new version), by number and
    by traffic: the share of training counts they carry in the version that holds them; the
    largest single new key (a flood) and the dropped keys per band of the parent's counts."""
    new = [i for i, k in enumerate(vectors.keys) if k not in parent.key_to_index]
    dropped = [i for i, k in enumerate(parent.keys) if k not in vectors.key_to_index]

    def share(v: Vectors, rows: list[int]):
        if v.counts is None or v.counts.sum() == 0:
            return None
        return round(float(v.counts[rows].sum() / v.counts.sum()), 4)

    report = {"new": len(new), "new_traffic": share(vectors, new),
              "dropped": len(dropped), "dropped_traffic": share(parent, dropped),
              "dropped_share": round(len(dropped) / len(parent), 4) if len(parent) else 0.0}
    if new and vectors.counts is not None and vectors.counts.sum() > 0:
        top = new[int(np.argmax(vectors.counts[new]))]
        report["largest_new"] = {"key": vectors.keys[top], "traffic": share(vectors, [top])}
    if parent.counts is not None:
        gone = np.zeros(len(parent), dtype=bool)
        gone[dropped] = True
        labels = band_of(parent.counts)
        report["dropped_bands"] = {name: {"keys": int((labels == i).sum()), "dropped": int(gone[labels == i].sum())}
                                   for i, (name, _, _) in enumerate(BANDS) if (labels == i).any()}
    if vectors.cold is not None or parent.cold is not None:  # cold keys that gained history, and new ones
        report["warmed"] = sum(1 for k in parent.keys if parent.is_cold(k) and k in vectors and not vectors.is_cold(k))
        report["cold"] = int(vectors.cold.sum()) if vectors.cold is not None else 0
    return report


def drift_report(vectors: Vectors, parent: Vectors, min_count: int, noise: dict | None,
                 not_aligned: str | None = None) -> dict:
    """The aligned version against its parent, beside the seed-noise baseline. `not_aligned`
    (why the alignment was skipped): no drift ratio, the gate cannot compare."""
    report = {**compare(vectors, parent, min_count), **key_changes(vectors, parent)}
    if noise:
        report["noise"] = noise
    if not_aligned:
        report["not_compared"] = f"not aligned: {not_aligned}"
    elif noise and report["anchors"]["overlap"] is not None and noise.get("anchors", {}).get("overlap"):
        report["overlap_ratio"] = round(report["anchors"]["overlap"] / noise["anchors"]["overlap"], 4)
    return report

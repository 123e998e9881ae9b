"""A version rotated into its parent's space: orthogonal Procrustes on the anchors.

Two trainings of the same data land in unrelated coordinate systems (skip-gram is only
defined up to a rotation). `align` rotates a version's input and context vectors by the
orthogonal matrix fitted on the anchors (the shared keys seen at least `align_min_count`
times in both), so every score (cosine, input . context) is unchanged: alignment never
changes quality. (Pretrained vectors aligned to a model's vocab are another matter:
catvec.finetuning.align.)
"""

from __future__ import annotations

import logging

import numpy as np

from catvec.base.vectors import Vectors

log = logging.getLogger(__name__)


def procrustes(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal matrix R minimising ||source @ R - target|| (Schoenemann 1966):
    R = U V^T where U S V^T is the SVD of source^T target."""
    u, _, vt = np.linalg.svd(source.astype(np.float64).T @ target.astype(np.float64))
    return u @ vt


def shared_rows(vectors: Vectors, parent: Vectors) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (in vectors, in parent) of the keys both hold with history, in vectors'
    order: cold keys (composed from attributes) are never anchors and never judged."""
    index = parent.key_to_index
    mine = [i for i, k in enumerate(vectors.keys) if k in index]
    theirs = [index[vectors.keys[i]] for i in mine]
    mine, theirs = np.asarray(mine, dtype=np.int64), np.asarray(theirs, dtype=np.int64)
    if vectors.cold is not None or parent.cold is not None:
        warm = np.ones(len(mine), dtype=bool)
        warm &= ~vectors.cold[mine] if vectors.cold is not None else True
        warm &= ~parent.cold[theirs] if parent.cold is not None else True
        mine, theirs = mine[warm], theirs[warm]
    return mine, theirs


def anchor_rows(vectors: Vectors, parent: Vectors, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Shared keys seen at least `min_count` times in both (all shared keys without counts)."""
    mine, theirs = shared_rows(vectors, parent)
    if vectors.counts is not None and parent.counts is not None:
        keep = (vectors.counts[mine] >= min_count) & (parent.counts[theirs] >= min_count)
        mine, theirs = mine[keep], theirs[keep]
    return mine, theirs


def align(vectors: Vectors, parent: Vectors, min_count: int) -> tuple[Vectors, dict]:
    """`vectors` rotated into `parent`'s space, and the record of how. Fewer anchors than
    dimensions (or another dimension) leave the vectors as they are, with the reason."""
    record = {"parent_keys": len(parent), "min_count": int(min_count)}
    if parent.dim != vectors.dim:
        return vectors, {**record, "applied": False,
                         "reason": f"dimension {vectors.dim} differs from the parent's {parent.dim}"}
    mine, theirs = anchor_rows(vectors, parent, min_count)
    record["anchors"] = int(len(mine))
    if len(mine) < vectors.dim:
        return vectors, {**record, "applied": False,
                         "reason": f"{len(mine)} shared keys seen >= {min_count} times, fewer than the "
                                   f"{vectors.dim} dimensions; lower --align-min-count"}
    rotation = procrustes(vectors.matrix[mine], parent.matrix[theirs])
    before = median_cosine(vectors.matrix[mine], parent.matrix[theirs])
    matrix = (vectors.matrix.astype(np.float64) @ rotation).astype(np.float32)
    context = None
    if vectors.context is not None:
        context = (vectors.context.astype(np.float64) @ rotation).astype(np.float32)
    aligned = Vectors(keys=vectors.keys, matrix=matrix, context=context, counts=vectors.counts,
                      scorer=vectors.scorer, min_support=vectors.min_support, supports=vectors.supports,
                      cold=vectors.cold)
    record.update({
        "applied": True,
        "median_cosine_before": round(before, 4),
        "median_cosine": round(median_cosine(matrix[mine], parent.matrix[theirs]), 4),
        "residual": round(relative_residual(matrix[mine], parent.matrix[theirs]), 4),
    })
    if context is not None and parent.context is not None:
        record["residual_context"] = round(relative_residual(context[mine], parent.context[theirs]), 4)
    log.info("aligned to the parent on %d anchors: median cosine %.3f -> %.3f", len(mine), before,
             record["median_cosine"])
    return aligned, record


def median_cosine(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0:
        return float("nan")
    return float(np.median(row_cosines(a, b)))


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return np.einsum("ij,ij->i", a, b) / np.maximum(na * nb, 1e-12)


def relative_residual(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / ||b|| (Frobenius): 0 = the same points."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))

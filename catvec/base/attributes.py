"""Item attributes (genre, brand, year...) and the vectors composed from them for keys
with no history ("cold" keys).

A key without events has no vector: nothing can recommend it and a tabular model starts
it from its out-of-vocabulary row. Its attributes are known on day one, so catvec fits a
ridge regression from attribute features to vectors on the keys that have both (each
weighted by its training count, so well-measured vectors steer the fit), and gives every
key of the attributes table without a vector the prediction for its attributes, for the
input and the context vectors alike (a key whose every cell is empty gets nothing: no
attribute, no information); composed context vectors are scaled to the lower quartile of
the context-vector norms of well-seen keys, so cold keys can reach context-scorer lists. A key seen only a few times has a noisy learned vector; with
`blend` it keeps n / (n + blend) of it and takes the rest from its attributes. Features are one indicator per attribute value
(`genre=Comedy`, `year=1995`). Why a regression and not attribute tokens trained inside
the sequences (Meta-Prod2Vec), why weighted, and why no crosses of two columns' values:
docs/cold_start.md (measured).

    attributes = read_attributes("items.csv", key_col="item_id", columns="genre,year")
    vectors, record = compose_vectors(vectors, attributes)   # cold keys appended, count 0
    vectors.cold                                             # (n_keys,) bool
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from catvec.base.errors import CatvecError

log = logging.getLogger(__name__)

DEFAULT_SEP = "|"
# A column with a distinct value for every key (of at least this many keys) is an id, not
# an attribute: it would give every key its own feature and nothing to share.
MIN_KEYS_FOR_ID_CHECK = 10
RIDGE = 1.0  # ridge penalty as a multiple of the mean training count (the weights' scale)
BLEND_BELOW = 20  # keys seen fewer times may take part of their vectors from their attributes (blend)
# Composed context vectors are scaled to this quantile of the context-vector norms of the keys
# seen >= BLEND_BELOW times: a prediction averages many keys' vectors and comes out short, so
# under the context scorer (input . context) a cold key never reached a list (docs/cold_start.md).
CONTEXT_NORM_QUANTILE = 0.25


@dataclass
class Attributes:
    """One row per key: its attribute values as `column=value` tokens (missing cells left out)."""

    keys: list[str]
    values: list[list[str]]
    columns: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.keys)


def read_attributes(path, key_col: str, columns: str = "", sep: str = DEFAULT_SEP) -> Attributes:
    """The attributes CSV at `path` -> Attributes. `columns` is a comma list (empty = every
    column but the key); `sep` splits multi-valued cells (`Action|Comedy`). Refused: a
    missing key column or attribute column, a key listed twice, a column with a distinct
    value for every key (an id). Allowed: empty cells (fewer attributes), keys never seen.

    Example: read_attributes("items.csv", "item_id", "genre,year").values[0] -> ["genre=Action", "year=1995"]
    """
    import polars as pl

    from catvec.base.keys import normalize_keys

    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise CatvecError(f"item_attributes: cannot read {path} as CSV ({str(exc).splitlines()[0]})") from None
    if key_col not in frame.columns:
        raise CatvecError(f"item_attributes: {path} has no key column {key_col!r} (columns: "
                          f"{', '.join(frame.columns)}); name it like the events' item column or pass --item-col")
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else \
        [c for c in frame.columns if c != key_col]
    missing = [c for c in wanted if c not in frame.columns or c == key_col]
    if missing:
        raise CatvecError(f"item_attributes: {path} has no attribute column {missing[0]!r} (columns: "
                          f"{', '.join(c for c in frame.columns if c != key_col)}); fix --attribute-cols")
    if not wanted:
        raise CatvecError(f"item_attributes: {path} has only the key column {key_col!r}; add attribute columns")
    keys = normalize_keys(frame[key_col]).to_list()
    present = [(i, k) for i, k in enumerate(keys) if k is not None]
    seen: set[str] = set()
    for _, key in present:
        if key in seen:
            raise CatvecError(f"item_attributes: {path} lists key {key!r} twice in column {key_col!r}; "
                              "keep one row per key (join multiple values with the separator)")
        seen.add(key)
    cells = {c: frame[c].to_list() for c in wanted}
    for column, col_cells in cells.items():
        filled = [v.strip() for v in col_cells if v is not None and v.strip()]
        if len(filled) >= MIN_KEYS_FOR_ID_CHECK and len(set(filled)) == len(filled):
            raise CatvecError(f"item_attributes: column {column!r} of {path} has a different value for each of its "
                              f"{len(filled)} keys: an id, not an attribute (nothing to share between keys); "
                              "leave it out with --attribute-cols, or bucket a number first (a year into decades)")
    values = []
    for i, _ in present:
        tokens = []
        for column in wanted:
            cell = cells[column][i]
            parts = cell.split(sep) if sep and cell is not None else [cell]
            tokens += [f"{column}={p.strip()}" for p in parts if p is not None and p.strip()]
        values.append(list(dict.fromkeys(tokens)))
    return Attributes(keys=[k for _, k in present], values=values, columns=wanted, source=str(path))


def compose_vectors(vectors, attributes: Attributes, blend: int = 0, ridge: float = RIDGE):
    """`vectors` with a composed input (and context) row appended for every key of
    `attributes` that has no row, flagged cold with count 0, and a record of the fit.
    The regression is fitted on the keys with history and attributes; keys already cold
    in `vectors` are never fitted on. With no such key nothing is composed (the record
    says why). Composed context rows get the CONTEXT_NORM_QUANTILE of the context norms of
    the keys seen >= BLEND_BELOW times (all fitted keys without counts). blend > 0: a key with attributes seen n < BLEND_BELOW times keeps
    n / (n + blend) of its learned vectors and takes the rest from its composed ones (a
    vector learned from a handful of events is mostly noise: docs/cold_start.md).

    Example: vectors, record = compose_vectors(vectors, read_attributes("items.csv", "item_id"))
    """
    from scipy import sparse

    from catvec.base.vectors import Vectors

    index = vectors.key_to_index
    cold_before = vectors.cold if vectors.cold is not None else np.zeros(len(vectors), dtype=bool)
    features = attributes.values
    warm_rows = [(i, index[k]) for i, k in enumerate(attributes.keys)
                 if k in index and not cold_before[index[k]] and features[i]]
    new = [i for i, k in enumerate(attributes.keys) if k not in index and features[i]]
    bare = sum(1 for i, k in enumerate(attributes.keys) if k not in index and not features[i])
    record = {"attribute_keys": len(attributes), "columns": attributes.columns, "fitted_on": len(warm_rows),
              "cold": int(cold_before.sum()), "without_attributes": bare, "composed": 0, "blended": 0}
    if not warm_rows:
        if new:
            log.warning("item attributes: none of the %d keys with attributes has history; no cold vectors "
                        "composed", len(attributes))
            record["reason"] = "no key of the attributes table has history in these vectors; check the key column"
        return vectors, record
    at = np.array([r for _, r in warm_rows], dtype=np.int64)
    weights = np.ones(len(at)) if vectors.counts is None else np.maximum(vectors.counts[at].astype(np.float64), 1.0)
    rare = np.flatnonzero(weights < BLEND_BELOW) if blend > 0 and vectors.counts is not None else np.zeros(0, int)
    if not new and not len(rare):
        return vectors, record
    targets = [vectors.matrix] + ([vectors.context] if vectors.context is not None else [])
    y = np.hstack([m[at] for m in targets]).astype(np.float64)            # (n_warm, dim or 2 dim)
    vocab, x_warm = _feature_matrix([features[i] for i, _ in warm_rows], None)
    _, x_new = _feature_matrix([features[i] for i in new], vocab)
    predicted = _ridge_predict(x_warm, y, weights, sparse.vstack([x_new, x_warm[rare]]).tocsr(),
                               ridge * float(weights.mean()))               # (new + rare, dim or 2 dim)
    composed, rare_composed = predicted[:len(new)], predicted[len(new):]
    dim = vectors.dim
    if vectors.context is not None and len(new):
        well_seen = at if vectors.counts is None else at[weights >= BLEND_BELOW]
        composed[:, dim:] = _calibrated(composed[:, dim:], vectors.context[well_seen])
    matrix, context = vectors.matrix, vectors.context
    if len(rare):
        keep = (weights[rare] / (weights[rare] + blend))[:, None]           # (n_rare, 1): share of the learned
        matrix, rows = matrix.copy(), at[rare]
        matrix[rows] = keep * matrix[rows] + (1 - keep) * rare_composed[:, :dim]
        if context is not None:
            context = context.copy()
            context[rows] = keep * context[rows] + (1 - keep) * rare_composed[:, dim:]
    cold = np.concatenate([cold_before, np.ones(len(new), dtype=bool)])
    counts = None if vectors.counts is None else np.concatenate([vectors.counts, np.zeros(len(new), dtype=np.int64)])
    out = Vectors(keys=vectors.keys + [attributes.keys[i] for i in new],
                  matrix=np.vstack([matrix, composed[:, :dim]]),
                  context=None if context is None else np.vstack([context, composed[:, dim:]]),
                  counts=counts, cold=cold, scorer=vectors.scorer, min_support=vectors.min_support,
                  supports=vectors.supports)
    log.info("item attributes: %d cold keys composed and %d rare keys blended, from %d attribute features fitted "
             "on %d keys", len(new), len(rare), len(vocab), len(warm_rows))
    return out, {**record, "composed": len(new), "blended": int(len(rare)), "cold": int(cold.sum()),
                 "features": len(vocab)}


def _calibrated(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`rows` (n, d) scaled to the CONTEXT_NORM_QUANTILE of the norms of `reference` (m, d),
    the context vectors of well-seen keys; as they are when there is no such key."""
    if not len(reference):
        return rows
    target = np.quantile(np.linalg.norm(reference, axis=1), CONTEXT_NORM_QUANTILE)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows * (target / np.where(norms > 0, norms, 1.0))).astype(rows.dtype)


def _feature_matrix(rows: list[list[str]], vocab: dict | None):
    """Token lists -> (vocab, sparse (n, n_features) 0/1 matrix); with a vocab, unknown tokens are dropped."""
    from scipy import sparse

    if vocab is None:
        vocab = {}
        for tokens in rows:
            for t in tokens:
                vocab.setdefault(t, len(vocab))
    indptr, cols = [0], []
    for tokens in rows:
        cols += [vocab[t] for t in tokens if t in vocab]
        indptr.append(len(cols))
    data = np.ones(len(cols), dtype=np.float64)
    return vocab, sparse.csr_matrix((data, np.asarray(cols, dtype=np.int64), np.asarray(indptr)),
                                    shape=(len(rows), len(vocab)))


def _ridge_predict(x, y: np.ndarray, weights: np.ndarray, x_new, penalty: float) -> np.ndarray:
    """Weighted ridge with an unpenalised mean: fit y ~ mean + x @ B on (x, y, weights),
    predict for x_new. (n, f) sparse, (n, d) -> (m, d) float32."""
    from scipy import sparse
    from scipy.sparse.linalg import splu

    mean = (weights[:, None] * y).sum(axis=0) / weights.sum()             # (d,)
    xw = x.multiply(weights[:, None]).tocsr()                             # (n, f)
    gram = (x.T @ xw + penalty * sparse.identity(x.shape[1])).tocsc()     # (f, f)
    coef = splu(gram).solve(np.asarray(xw.T @ (y - mean)))                # (f, d)
    return (mean + x_new @ coef).astype(np.float32)

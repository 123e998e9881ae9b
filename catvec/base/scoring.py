"""Scorers: how a query (items a user had, or a basket) ranks every candidate key.

Two scorers, both "sum the query rows, dot with every candidate row":

    cosine    unit input vectors . unit input vectors     (items used in the same contexts:
              substitutes, "more like this")
    context   input vectors . context (output) vectors    (the skip-gram's own prediction of
              what occurs next to the query: complements, "what comes next")

Candidates seen fewer than `min_support` times in training are left out of the lists
(their vectors stay), so rare keys cannot crowd neighbour and recommendation lists. Cold
keys (no history, vectors composed from attributes: catvec.base.attributes) are candidates
regardless of min_support, unless `cold=False` leaves them out.

    scorer = make_scorer(vectors, "context", min_support=3)
    scores = scorer.query_vectors(indptr, items) @ scorer.candidates.T   # (n_queries, n_keys)
    top = top_k(scores, 10, exclude=(rows, cols))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catvec.base.errors import CatvecError

SCORERS = ("cosine", "context")


@dataclass
class Scorer:
    name: str
    queries: np.ndarray      # (n_keys, dim) row i: what key i adds to a query
    candidates: np.ndarray   # (n_keys, dim) row j: what key j is scored with
    allowed: np.ndarray      # (n_keys,) bool: may appear in a list (support >= min_support)
    min_support: int = 1

    def query_vectors(self, indptr: np.ndarray, items: np.ndarray, query_last: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """CSR queries (indptr (n_q + 1,), items (nnz,) row indices, -1 = unknown) ->
        ((n_q, dim) sum of the query rows of the last `query_last` known items of each
        query (0 = all), (n_q,) bool: the query has a known item)."""
        n_q = len(indptr) - 1
        owner = np.repeat(np.arange(n_q), np.diff(indptr))      # (nnz,)
        known = items >= 0
        k_items, k_owner = items[known], owner[known]
        if query_last > 0:
            k_end = np.cumsum(np.bincount(k_owner, minlength=n_q))   # end of each query's known run
            from_end = k_end[k_owner] - 1 - np.arange(len(k_items))
            k_items, k_owner = k_items[from_end < query_last], k_owner[from_end < query_last]
        out = np.zeros((n_q, self.queries.shape[1]), dtype=np.float32)
        np.add.at(out, k_owner, self.queries[k_items])
        return out, np.bincount(k_owner, minlength=n_q) > 0


def check_scorer(name: str, vectors=None) -> str:
    """The scorer name, or a clear error (unknown name; context on vectors without context)."""
    if name not in SCORERS:
        raise CatvecError(f"scorer: unknown scorer {name!r}; use one of {', '.join(SCORERS)}")
    if name == "context" and vectors is not None and vectors.context is None:
        raise CatvecError("scorer: this version has no context vectors (trained by an older catvec); "
                          "use --scorer cosine or pretrain it again")
    return name


def make_scorer(vectors, name: str | None = None, min_support: int | None = None, cold: bool = True) -> Scorer:
    """A Scorer over `vectors`; name and min_support default to what the version recorded
    (a support chosen for this scorer, else the version's min_support). Cold keys are
    allowed (cold=False: never)."""
    name = check_scorer(name or vectors.scorer, vectors)
    recorded = (vectors.supports or {}).get(name, vectors.min_support)
    support = recorded if min_support is None else int(min_support)
    if support < 1:
        raise CatvecError(f"min_support must be >= 1, got {support}")
    if name == "cosine":
        unit = unit_rows(vectors.matrix)
        queries, candidates = unit, unit
    else:
        queries, candidates = vectors.matrix, vectors.context
    if vectors.counts is None or support <= 1:
        allowed = np.ones(len(vectors), dtype=bool)
    else:
        allowed = vectors.counts >= support
    if vectors.cold is not None:
        allowed = allowed | vectors.cold if cold else allowed & ~vectors.cold
    return Scorer(name, queries, candidates, allowed, support)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero): float32 (n, dim)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (np.asarray(matrix) / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_q, n) float32 scores (-inf = not a candidate) -> (n_q, k) indices and scores, best
    first; equal scores inside the list go to the lower index. k is capped at n.
    torch.topk, because it is several times faster than numpy's argpartition on wide rows."""
    import torch

    k = min(k, scores.shape[1])
    values, idx = torch.topk(torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)), k, dim=1)
    values, idx = values.numpy(), idx.numpy().astype(np.int64)
    order = np.lexsort((idx, -values), axis=1)            # by score, then by index
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(values, order, axis=1)


def popularity_scores(counts: np.ndarray) -> np.ndarray:
    """Training count with a fixed tie-break (the lower row first): distinct scores."""
    n = len(counts)
    return np.asarray(counts, dtype=np.float64) + (n - np.arange(n)) / (n + 1.0)


@dataclass
class Recommendations:
    items: np.ndarray     # (n_q, k) int64 row indices, best first; -1 = no more candidates
    scores: np.ndarray    # (n_q, k) float32 (a popularity query: the training counts)
    fallback: np.ndarray  # (n_q,) bool: no known item in the query, ranked by popularity
    scorer: str = "cosine"
    min_support: int = 1


def recommend_rows(vectors, indptr: np.ndarray, items: np.ndarray, k: int, scorer: str | None = None,
                   min_support: int | None = None, query_last: int = 0, batch_size: int = 2048,
                   cold: bool = True) -> Recommendations:
    """Top-k keys for CSR queries (row indices, -1 = unknown key), in batched matrix
    products; the query is the last `query_last` known items (0 = all). Query items are
    never candidates; a query without a known item gets the most frequent allowed keys
    (nothing without counts); cold=False leaves cold keys out of every list."""
    if k < 1:
        raise CatvecError(f"topn must be >= 1, got {k}")
    s = make_scorer(vectors, scorer, min_support, cold)
    n_q, n = len(indptr) - 1, len(vectors)
    k = min(k, n)
    batch_size = min(batch_size, max(16, 2**24 // max(n, 1)))   # a score block of at most 64 MB
    out_items = np.full((n_q, k), -1, dtype=np.int64)
    out_scores = np.full((n_q, k), -np.inf, dtype=np.float32)
    fallback = np.zeros(n_q, dtype=bool)
    blocked = ~s.allowed
    # a query with no known key: the most frequent allowed keys, score = training count
    if vectors.counts is not None:
        order = np.argsort(-vectors.counts, kind="stable")
        popular = order[s.allowed[order]][:k]
        popular_scores = vectors.counts[popular].astype(np.float32)
    else:
        popular, popular_scores = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    candidates_t = np.ascontiguousarray(s.candidates.T)
    for lo in range(0, n_q, batch_size):
        hi = min(lo + batch_size, n_q)
        q, known = s.query_vectors(indptr[lo:hi + 1] - indptr[lo], items[indptr[lo]:indptr[hi]], query_last)
        scores = q @ candidates_t                                  # (batch, dim) @ (dim, n) -> (batch, n)
        if blocked.any():
            scores[:, blocked] = -np.inf
        owner = np.repeat(np.arange(hi - lo), np.diff(indptr[lo:hi + 1]))
        seen = items[indptr[lo]:indptr[hi]]
        scores[owner[seen >= 0], seen[seen >= 0]] = -np.inf
        idx, best = top_k(scores, k)
        out_items[lo:hi] = np.where(np.isfinite(best), idx, -1)
        out_scores[lo:hi] = best
        rows = lo + np.flatnonzero(~known)
        out_items[rows], out_scores[rows] = -1, -np.inf
        out_items[rows, :len(popular)], out_scores[rows, :len(popular)] = popular, popular_scores
        fallback[lo:hi] = ~known
    return Recommendations(out_items, out_scores, fallback, s.name, s.min_support)

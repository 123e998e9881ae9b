"""Related items: the top-k neighbours of every key at once (`catvec similar --all`).

Each key is a query on its own, scored exactly as `Vectors.most_similar(key)` scores it:
the same scorer (cosine or context), the same min_support and cold rules, the key itself
never in its own list, equal scores in index order. Two ways to find the lists:

    exact    batched matrix products, (batch, dim) @ (dim, n_keys) blocks of at most
             BLOCK_FLOATS scores: memory O(batch x keys), never keys x keys; time O(keys^2)
    approx   an HNSW graph (faiss, the optional extra `catvec[ann]`) over the candidate
             vectors, searched for every key; the found neighbours are re-scored exactly,
             so every score is the true score and only a missed neighbour differs
    auto     approx from APPROX_FROM keys when faiss is installed, else exact

The context scorer ranks by inner product (input . context), which a distance index does not
search directly: each candidate c gets one more coordinate sqrt(M^2 - |c|^2) (M the largest
candidate norm) and each query a 0, so the nearest by L2 is the largest inner product
(Bachrach et al. 2014). Cosine uses unit vectors, where that coordinate is 0.

    vectors = load_vectors("artifacts/latest")
    write_related(vectors, related_items(vectors, k=10, index="auto"), "related.parquet")
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catvec.base.errors import CatvecError
from catvec.base.scoring import make_scorer, top_k
from catvec.base.writes import fsync_file, writing

log = logging.getLogger(__name__)

INDEXES = ("exact", "approx", "auto")
# From this many keys `auto` builds the approximate index: on 2 shared cores
# (benchmarks/related.py, docs/scale.md) approx broke even with exact at 20k keys and was
# 2.2x faster at 50k (recall@10 0.997); a busier earlier run broke even at 50k.
APPROX_FROM = 50_000
BLOCK_FLOATS = 2**25            # one exact score block: at most 128 MB of float32
HNSW_LINKS, HNSW_BUILD, HNSW_SEARCH = 16, 64, 64     # M, efConstruction, efSearch (>= 2k+2)
MAX_EF_SEARCH = 4096                                  # beyond it the index costs more than exact lists
INSTALL_HINT = "pip install 'catvec[ann]' (faiss-cpu)"


@dataclass
class Related:
    items: np.ndarray     # (n_keys, k) int64 row indices of the neighbours, best first; -1 = none
    scores: np.ndarray    # (n_keys, k) float32 exact scores; -inf where items is -1
    scorer: str
    min_support: int
    index: str            # what found them: exact or approx


def related_items(vectors, k: int = 10, scorer: str | None = None, min_support: int | None = None,
                  cold: bool = True, index: str = "exact", on_progress=None, ef_search: int = HNSW_SEARCH) -> Related:
    """The top-k neighbours of every key of `vectors`. scorer, min_support and cold as in
    `Vectors.most_similar`; index exact, approx or auto (module docstring); ef_search: how
    widely the approximate index searches (recall against time; at least 2k + 2 is used).
    `on_progress(done, total)` is called after each batch of keys.

    Example: related_items(vectors, k=5).items[vectors.key_to_index["1001"]]
    """
    if k < 1:
        raise CatvecError(f"--k must be >= 1, got {k}")
    check_ef_search(ef_search)
    index = resolve_index(index, len(vectors))
    s = make_scorer(vectors, scorer, min_support, cold)
    progress = on_progress or (lambda done, total: None)
    found = exact_related(s, k, progress) if index == "exact" else approx_related(s, k, progress, ef_search)
    return Related(*found, scorer=s.name, min_support=s.min_support, index=index)


def resolve_index(index: str, n_keys: int) -> str:
    """exact or approx: `auto` is approx from APPROX_FROM keys when faiss is installed."""
    if index not in INDEXES:
        raise CatvecError(f"--index: unknown index {index!r}; use one of {', '.join(INDEXES)}")
    if index == "approx":
        load_faiss()
    if index != "auto":
        return index
    if n_keys < APPROX_FROM:
        return "exact"
    try:
        load_faiss()
    except CatvecError:
        log.info("--index auto: faiss is not installed, exact lists for %d keys (%s)", n_keys, INSTALL_HINT)
        return "exact"
    return "approx"


def load_faiss():
    """The faiss module, or one line saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise CatvecError(f"--index approx needs the optional approximate index: {INSTALL_HINT}; "
                          "or use --index exact") from None
    return faiss


def exact_related(s, k: int, progress, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every key (or the keys at `rows`) against every candidate, in blocks of BLOCK_FLOATS scores."""
    n = len(s.queries)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    k = min(k, n)
    batch = int(min(4096, max(16, BLOCK_FLOATS // max(n, 1))))
    items = np.full((len(rows), k), -1, dtype=np.int64)
    scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
    candidates_t = np.ascontiguousarray(s.candidates.T)
    blocked = np.flatnonzero(~s.allowed)
    for lo in range(0, len(rows), batch):
        hi = min(lo + batch, len(rows))
        block = s.queries[rows[lo:hi]] @ candidates_t           # (batch, dim) @ (dim, n) -> (batch, n)
        block[:, blocked] = -np.inf
        block[np.arange(hi - lo), rows[lo:hi]] = -np.inf        # a key is not its own neighbour
        idx, best = top_k(block, k)
        items[lo:hi] = np.where(np.isfinite(best), idx, -1)
        scores[lo:hi] = best
        progress(hi, len(rows))
    return items, scores


def approx_related(s, k: int, progress, ef_search: int = HNSW_SEARCH) -> tuple[np.ndarray, np.ndarray]:
    """Every key searched in an HNSW index of the allowed candidates (build_index)."""
    return search_index(build_index(s), s, k, progress, ef_search=ef_search)


def check_ef_search(ef_search: int) -> None:
    if not isinstance(ef_search, int) or isinstance(ef_search, bool) or not 1 <= ef_search <= MAX_EF_SEARCH:
        raise CatvecError(f"--ef-search must be an integer from 1 to {MAX_EF_SEARCH:,}, got {ef_search!r}; "
                          f"{HNSW_SEARCH} is the default, 256 finds more neighbours of near-tied catalogues "
                          "(docs/scale.md)")


@dataclass
class AnnIndex:
    graph: object          # faiss.IndexHNSWFlat over (n_allowed, dim + 1) candidates
    allowed: np.ndarray    # (n_allowed,) the key row of each indexed candidate


def build_index(s) -> AnnIndex:
    """An HNSW graph of the allowed candidates, one coordinate added for inner products."""
    faiss = load_faiss()
    allowed = np.flatnonzero(s.allowed)
    cand = np.ascontiguousarray(s.candidates[allowed], dtype=np.float32)
    norms2 = np.einsum("ij,ij->i", cand, cand)
    extra = np.sqrt(np.maximum(norms2.max(initial=0.0) - norms2, 0.0)).astype(np.float32)
    graph = faiss.IndexHNSWFlat(cand.shape[1] + 1, HNSW_LINKS)
    graph.hnsw.efConstruction = HNSW_BUILD
    graph.add(np.hstack([cand, extra[:, None]]))                # (n_allowed, dim + 1)
    return AnnIndex(graph, allowed)


def search_index(ann: AnnIndex, s, k: int, progress, rows: np.ndarray | None = None,
                 ef_search: int | None = None, batch: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Each key's (or the keys at `rows`) k + 1 nearest in the index (the key itself may be one),
    re-scored exactly and ranked as exact_related ranks: by score, then by row."""
    n = len(s.queries)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    k = min(k, n)
    items = np.full((len(rows), k), -1, dtype=np.int64)
    scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
    want = min(k + 1, len(ann.allowed))
    ann.graph.hnsw.efSearch = max(ef_search or HNSW_SEARCH, 2 * k + 2)
    for lo in range(0, len(rows) if want else 0, batch):
        hi = min(lo + batch, len(rows))
        q = np.ascontiguousarray(s.queries[rows[lo:hi]], dtype=np.float32)
        _, found = ann.graph.search(np.hstack([q, np.zeros((hi - lo, 1), np.float32)]), want)   # (batch, want)
        near = np.where(found >= 0, ann.allowed[np.maximum(found, 0)], -1)
        exact = np.einsum("bd,bjd->bj", q, s.candidates[np.maximum(near, 0)])     # (batch, want) true scores
        exact[(near < 0) | (near == rows[lo:hi, None])] = -np.inf
        order = np.lexsort((near, -exact), axis=1)[:, :k]       # by score, then by row
        best = np.take_along_axis(exact, order, axis=1).astype(np.float32)
        items[lo:hi, :order.shape[1]] = np.where(np.isfinite(best), np.take_along_axis(near, order, axis=1), -1)
        scores[lo:hi, :order.shape[1]] = best
        progress(hi, len(rows))
    if not want:
        progress(len(rows), len(rows))      # nothing may be listed (min_support above every count)
    return items, scores


RELATED_FORMATS = {".parquet": "parquet", ".csv": "csv"}


def related_format(path) -> str:
    """parquet or csv, from the output file's suffix; anything else is one line."""
    fmt = RELATED_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise CatvecError(f"--out {path}: name a .parquet or .csv file (the format follows the suffix)")
    return fmt


def write_related(vectors, related: Related, path) -> Path:
    """Parquet or CSV (by the suffix), one row per (key, rank): key (string), rank (int64,
    1 = best), neighbour (string), score (float64). A key with fewer neighbours than k
    (min_support, a small catalogue) has fewer rows. Written whole to a temp file, then
    renamed: never half-written.

    Example: polars.read_parquet(write_related(vectors, related, "related.parquet"))
    """
    import polars as pl

    path = Path(path)
    fmt = related_format(path)
    n, k = related.items.shape
    keep = related.items.ravel() >= 0
    keys = np.asarray(vectors.keys, dtype=object)
    frame = pl.DataFrame({
        "key": pl.Series(np.repeat(keys, k)[keep], dtype=pl.Utf8),
        "rank": pl.Series(np.tile(np.arange(1, k + 1), n)[keep], dtype=pl.Int64),
        "neighbour": pl.Series(keys[related.items.ravel()[keep]], dtype=pl.Utf8),
        "score": pl.Series(related.scores.ravel()[keep], dtype=pl.Float64),
    })
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with writing(path, partial=tmp):
            frame.write_parquet(tmp) if fmt == "parquet" else frame.write_csv(tmp)
            fsync_file(tmp)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


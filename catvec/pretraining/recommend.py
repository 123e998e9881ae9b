"""`catvec recommend`: top-k items for every user (or basket) of a queries file.

The queries file is read like pretrain's events (same column options): one query per
user, its items in time order (the history), or per basket (`basket_col`). The query of a
history is its last `query_last` items (the version's setting), of a basket every item;
items in the query are never recommended. Unknown items are skipped and counted; a query
with no known item gets the most frequent items. The output columns are named after the
queries' columns (user or basket, rank, item, score); `catvec recommend` reads the queries
with the column names the version was trained with unless told otherwise. Scoring runs in batched matrix products
(catvec.base.scoring.recommend_rows), never a Python loop per query.

    result = recommend_file(PretrainConfig(events="queries.csv"), "artifacts/latest", topn=10,
                            out="recs.csv")
    result.queries, result.unknown_items, result.popularity_queries
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catvec.base.errors import CatvecError

log = logging.getLogger(__name__)


@dataclass
class RecommendResult:
    path: Path
    queries: int
    query_items: int
    unknown_items: int
    popularity_queries: int
    scorer: str
    min_support: int


def query_rows(table, keys: list[str], basket: bool):
    """EventsTable -> (query ids, CSR indptr, row indices with -1 for unknown keys)."""
    import polars as pl

    by = "group" if basket else "user"
    order = [by, "row"] if basket else ["user", "t", "row"]
    frame = table.frame.sort(order)
    index = pl.DataFrame({"item": pl.Series(keys, dtype=pl.Utf8), "idx": np.arange(len(keys), dtype=np.int64)})
    frame = frame.join(index, on="item", how="left", maintain_order="left").with_columns(pl.col("idx").fill_null(-1))
    runs = frame[by].rle().struct.unnest()                  # one run per query (sorted by it)
    indptr = np.concatenate([[0], np.cumsum(runs["len"].to_numpy())]).astype(np.int64)
    return runs["value"].to_list(), indptr, frame["idx"].to_numpy().astype(np.int64)


# the columns a version was trained with, which its queries are read with unless given
TRAINED_COLUMNS = ("user_col", "item_col", "time_col", "basket_col")


def trained_columns(vectors_path) -> dict:
    """{option: value} of TRAINED_COLUMNS from the version's manifest (its params)."""
    from catvec.base.manifest import read_manifest, resolve_version_dir

    params = read_manifest(resolve_version_dir(vectors_path), verify=False).get("params") or {}  # load_vectors verifies
    return {name: params[name] for name in TRAINED_COLUMNS if isinstance(params.get(name), str)}


def recommend_file(options, vectors_path, topn: int, out, scorer: str | None = None,
                   min_support: int | None = None, cold: bool = True) -> RecommendResult:
    """Read the queries `options` name (an EventOptions: read like pretrain's events),
    write top-`topn` CSV; cold=False leaves out cold keys (composed from attributes)."""
    import polars as pl

    from catvec.base.scoring import check_scorer, recommend_rows
    from catvec.base.manifest import read_manifest, resolve_version_dir
    from catvec.base.writes import check_writable, describe_os_error
    from catvec.base.vectors import load_vectors
    from catvec.pretraining.events import read_events_table

    if topn < 1:
        raise CatvecError(f"--topn must be >= 1, got {topn}")
    check_writable(out, "--out", file=True)
    vectors = load_vectors(vectors_path)
    if scorer is not None:
        check_scorer(scorer, vectors)
    params = read_manifest(resolve_version_dir(vectors_path), verify=False).get("params", {})  # load_vectors verified it
    basket = options.basket
    query_last = 0 if basket else int(params.get("query_last", 1))
    table = read_events_table(options)
    ids, indptr, items = query_rows(table, vectors.keys, basket)
    known = items >= 0
    if not known.any():
        raise CatvecError(f"{options.path}: none of its {len(items)} items (column {options.item_col!r}) is in the "
                          f"vectors; check --item-col and that the queries use the same ids as the events")
    recs = recommend_rows(vectors, indptr, items, topn, scorer, min_support, query_last=query_last, cold=cold)
    rank = np.tile(np.arange(1, recs.items.shape[1] + 1), len(ids))
    flat_items, flat_scores = recs.items.ravel(), recs.scores.ravel()
    keep = flat_items >= 0
    id_col, item_col = options.key_col, options.item_col
    frame = pl.DataFrame({
        id_col: np.repeat(np.array(ids, dtype=object), recs.items.shape[1])[keep].tolist(),
        "rank": rank[keep],
        item_col: [vectors.keys[i] for i in flat_items[keep]],
        "score": np.round(flat_scores[keep], 6),
    }, schema={id_col: pl.Utf8, "rank": pl.Int64, item_col: pl.Utf8, "score": pl.Float64})
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        frame.write_csv(tmp)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CatvecError(f"{out}: cannot write the recommendations ({describe_os_error(exc)})") from None
    return RecommendResult(path=out, queries=len(ids), query_items=len(items), unknown_items=int((~known).sum()),
                           popularity_queries=int(recs.fallback.sum()), scorer=recs.scorer, min_support=recs.min_support)

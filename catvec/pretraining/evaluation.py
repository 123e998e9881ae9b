"""Next-item evaluation: the leave-last-out split, its tasks, and HR@k / NDCG@k.

`pretrain --holdout last` keeps each user's last item out of the corpus (`last2` also the
one before it, the validation item) and stores the held-out (user, item, role) triples in
the version as holdout.json. Evaluation rebuilds every user's ordered history from the
same events with the same extraction rules (catvec.pretraining.corpus.sequence_frame),
checks that its last items are exactly the stored ones, and scores the vectors on them.

Scoring: for each user a task holds a history (the items before the held-out one, in
order) and a target (the held-out item). The query is the mean of the unit vectors of
the user's last `query_last` history items; every item in the vectors is a candidate,
ranked by cosine similarity to the query. Items already in the user's history are not
candidates (a target the user had seen before stays one: re-consumption counts). Ties
count against the target. A target without a vector, or a user without any history item
that has one, is a miss. The popularity baseline ranks the same candidates by training
frequency.

    quality = evaluate_version("artifacts/latest", events="data/events.csv")
    quality["vectors"]["test"]["hr"], quality["popularity"]["test"]["hr"]
    task = encode_task(vectors.keys, [["a", "b"], ["c"]], ["c", "a"])
    next_item_metrics(vectors.matrix, task, k=10)   # {"hr": .., "ndcg": .., "users": 2}
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catvec.base.config import HOLDOUT_MODES, PretrainConfig
from catvec.base.errors import CatvecError

log = logging.getLogger(__name__)

HOLDOUT_FILE = "holdout.json"
HOLDOUT_FORMAT = "catvec-holdout"
ROLES = {"test": 0, "valid": 1}  # role -> position from the end of the user's history


def save_heldout(heldout, path, mode: str) -> Path:
    """Write the held-out (user, item, role) rows as JSON (keys of any text survive)."""
    from catvec.base.store import write_json

    rows = [[u, i, r] for u, i, r in heldout.select("user", "item", "role").iter_rows()]
    write_json(Path(path), {"format": HOLDOUT_FORMAT, "mode": mode, "columns": ["user", "item", "role"], "rows": rows})
    return Path(path)


def load_heldout(path):
    """holdout.json -> (mode, polars DataFrame user, item, role)."""
    import polars as pl

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["rows"]
        mode = data["mode"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CatvecError(f"{path}: not a catvec holdout file ({exc})") from None
    frame = pl.DataFrame(rows, schema={"user": pl.Utf8, "item": pl.Utf8, "role": pl.Utf8}, orient="row")
    return mode, frame


def build_tasks(table, keys: list[str], holdout: int, **rules):
    """Events -> ({role: NextItemTask}, training counts per key row, held-out rows).

    `rules` are the sequence rules of catvec.pretraining.corpus.sequence_frame
    (`extraction_options(cfg)`), so the split sees the corpus's own 'last item'.
    A user with n events (after ordering and collapse) is evaluated when n >= holdout + 2;
    the test target is the last event, the validation target (holdout=2) the one before.
    """
    import polars as pl

    from catvec.pretraining.corpus import held_out_mask, sequence_frame

    lf = sequence_frame(table, **rules)
    n = pl.len().over("user")
    frame = (lf.with_columns(held=held_out_mask(holdout), from_end=n - 1 - pl.int_range(pl.len()).over("user"),
                             eligible=n >= holdout + 2)
             .select("user", "item", "held", "from_end", "eligible").collect())
    index = pl.DataFrame({"item": keys, "idx": np.arange(len(keys), dtype=np.int64)})
    frame = frame.join(index, on="item", how="left", maintain_order="left").with_columns(pl.col("idx").fill_null(-1))

    train_idx = frame.filter(~pl.col("held") & (pl.col("idx") >= 0))["idx"].to_numpy()
    counts = np.bincount(train_idx, minlength=len(keys)).astype(np.int64)
    held = frame.filter(pl.col("held"))
    heldout = held.select("user", "item", role=pl.when(pl.col("from_end") == 0).then(pl.lit("test")).otherwise(pl.lit("valid")))

    tasks = {}
    for role, offset in ROLES.items():
        if offset >= holdout:
            continue
        users = frame.filter(pl.col("eligible"))
        history = users.filter(pl.col("from_end") > offset)
        targets = users.filter(pl.col("from_end") == offset)
        lengths = history.group_by("user", maintain_order=True).len()["len"].to_numpy()
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        tasks[role] = NextItemTask(indptr, history["idx"].to_numpy(), targets["idx"].to_numpy())
    return tasks, counts, heldout


def score_tasks(vectors, tasks: dict, counts: np.ndarray, *, k: int = 10, query_last: int = 1) -> dict:
    """{role: task} -> the quality block of a manifest: vectors and popularity, HR@k / NDCG@k."""
    quality = {"k": k, "query_last": query_last, "vectors": {}, "popularity": {}}
    for role, task in tasks.items():
        quality["vectors"][role] = next_item_metrics(vectors.matrix, task, k=k, query_last=query_last)
        quality["popularity"][role] = popularity_metrics(counts, task, k=k)
        quality["users"] = task.n_users
        quality["target_coverage"] = round(float((task.targets >= 0).mean()) if task.n_users else 0.0, 4)
    return quality


def evaluate_version(path, events=None, *, k: int = 10, query_last: int | None = None) -> dict:
    """Score a version trained with --holdout on its held-out items.

    `events` is the events file it was trained on (default: the path in its manifest).
    """
    from catvec.base.store import read_manifest, resolve_version_dir
    from catvec.base.vectors import load_vectors
    from catvec.pretraining.corpus import extraction_options
    from catvec.pretraining.events import read_events_table

    directory = resolve_version_dir(path)
    manifest = read_manifest(directory)
    params = manifest.get("params", {})
    mode = params.get("holdout", "none")
    if mode == "none" or not (directory / HOLDOUT_FILE).is_file():
        raise CatvecError(f"{directory}: trained on every event (no {HOLDOUT_FILE}); "
                          "run `catvec pretrain --holdout last` to get a version that can be evaluated")
    known = {f.name for f in dataclasses.fields(PretrainConfig)}
    cfg = PretrainConfig(**{key: value for key, value in params.items() if key in known})
    source = events if events is not None else manifest.get("input", {}).get("path", "")
    if not source or source == "<DataFrame>":
        raise CatvecError(f"{directory}: trained from a DataFrame; pass --events PATH with the same events")
    table = events if not isinstance(events, (str, Path, type(None))) else None
    if table is None:
        cfg.events = str(source)
        table = read_events_table(cfg)
    else:
        table = read_events_table(cfg, table)
    vectors = load_vectors(directory)
    tasks, counts, heldout = build_tasks(table, vectors.keys, HOLDOUT_MODES[mode], **extraction_options(cfg))
    _, stored = load_heldout(directory / HOLDOUT_FILE)
    if not heldout.equals(stored):
        raise CatvecError(f"{source}: its users' last items differ from {directory / HOLDOUT_FILE} "
                          f"({heldout.height} vs {stored.height} held-out rows); pass the events this version was trained on")
    return {"holdout": mode, **score_tasks(vectors, tasks, counts, k=k, query_last=query_last or cfg.query_last)}


# ---- scoring ------------------------------------------------------------------------


@dataclass
class NextItemTask:
    """Histories in CSR form and targets, as row indices into the item matrix (-1 = no vector)."""

    indptr: np.ndarray    # (n_users + 1,) int64
    items: np.ndarray     # (n_history_items,) int64
    targets: np.ndarray   # (n_users,) int64

    def __post_init__(self):
        self.indptr = np.asarray(self.indptr, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.targets = np.asarray(self.targets, dtype=np.int64)
        assert len(self.indptr) == len(self.targets) + 1 and self.indptr[-1] == len(self.items)

    @property
    def n_users(self) -> int:
        return len(self.targets)


def encode_task(keys: list[str], histories: list[list[str]], targets: list[str]) -> NextItemTask:
    """Plain lists of keys -> NextItemTask over `keys` (small inputs; the pipeline encodes in polars)."""
    index = {k: i for i, k in enumerate(keys)}
    lengths = [len(h) for h in histories]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.array([index.get(k, -1) for h in histories for k in h], dtype=np.int64)
    return NextItemTask(indptr, items, np.array([index.get(k, -1) for k in targets], dtype=np.int64))


def next_item_metrics(matrix: np.ndarray, task: NextItemTask, k: int = 10, query_last: int = 1,
                      batch_size: int = 1024) -> dict:
    """HR@k and NDCG@k of cosine ranking with the query = mean of the last `query_last` items."""
    unit = matrix.astype(np.float32) / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    queries, has_query = _queries(unit, task, query_last)          # (users, dim), (users,)

    def scores(lo: int, hi: int) -> np.ndarray:
        return queries[lo:hi] @ unit.T                             # (batch, n_items)

    ranks = _target_ranks(scores, task, len(unit), batch_size)
    ranks[~has_query] = len(unit)
    return summarize(ranks, k)


def popularity_metrics(counts: np.ndarray, task: NextItemTask, k: int = 10, batch_size: int = 1024) -> dict:
    """HR@k and NDCG@k of ranking by `counts` (training frequency per item row); ties by row."""
    n = len(counts)
    # Distinct scores: the count, then the lower row first (a fixed, documented tie-break).
    score = np.asarray(counts, dtype=np.float64) + (n - np.arange(n)) / (n + 1.0)

    def scores(lo: int, hi: int) -> np.ndarray:
        return np.broadcast_to(score, (hi - lo, n)).copy()

    return summarize(_target_ranks(scores, task, n, batch_size), k)


def summarize(ranks: np.ndarray, k: int) -> dict:
    """0-based ranks -> {"hr", "ndcg", "users", "k"}."""
    hit = ranks < k
    gains = np.where(hit, 1.0 / np.log2(np.minimum(ranks, k) + 2.0), 0.0)
    n = len(ranks)
    return {"hr": float(hit.mean()) if n else float("nan"), "ndcg": float(gains.mean()) if n else float("nan"),
            "users": int(n), "k": int(k)}


def _queries(unit: np.ndarray, task: NextItemTask, query_last: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean unit vector of each user's last `query_last` history items that have a vector."""
    n_users = task.n_users
    user_of = np.repeat(np.arange(n_users), np.diff(task.indptr))  # (n_history_items,)
    known = task.items >= 0
    k_items, k_users = task.items[known], user_of[known]
    k_counts = np.bincount(k_users, minlength=n_users)
    k_end = np.cumsum(k_counts)                                   # end of each user's known run
    from_end = k_end[k_users] - 1 - np.arange(len(k_items))
    pick = from_end < query_last
    p_items, p_users = k_items[pick], k_users[pick]
    queries = np.zeros((n_users, unit.shape[1]), dtype=np.float32)
    np.add.at(queries, p_users, unit[p_items])
    return queries, np.bincount(p_users, minlength=n_users) > 0


def _target_ranks(scores, task: NextItemTask, n_items: int, batch_size: int) -> np.ndarray:
    """0-based rank of each target among the candidates (history excluded); n_items = miss."""
    ranks = np.full(task.n_users, n_items, dtype=np.int64)
    for lo in range(0, task.n_users, batch_size):
        hi = min(lo + batch_size, task.n_users)
        s = np.array(scores(lo, hi), dtype=np.float64, copy=True)  # (batch, n_items)
        targets = task.targets[lo:hi]
        ok = targets >= 0
        rows = np.arange(hi - lo)
        t_score = np.where(ok, s[rows, np.maximum(targets, 0)], np.nan)
        a, b = task.indptr[lo], task.indptr[hi]
        h_rows = np.repeat(rows, np.diff(task.indptr[lo:hi + 1]))
        h_items = task.items[a:b]
        seen = h_items >= 0
        s[h_rows[seen], h_items[seen]] = -np.inf
        s[rows[ok], targets[ok]] = t_score[ok]
        above = (s > t_score[:, None]).sum(axis=1) + (s == t_score[:, None]).sum(axis=1) - 1
        ranks[lo:hi] = np.where(ok, above, n_items)
    return ranks

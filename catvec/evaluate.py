"""Next-item evaluation: HR@k and NDCG@k by leave-last-out, numpy only.

For each user the task holds a history (the items before the held-out one, in order)
and a target (the held-out item). The query is the mean of the unit vectors of the
user's last `query_last` history items; every item in the vectors is a candidate,
ranked by cosine similarity to the query. Items already in the user's history are not
candidates (a target the user had seen before stays one: re-consumption counts). Ties
count against the target. A target without a vector, or a user without any history
item that has one, is a miss.

The popularity baseline ranks the same candidates by training frequency.

    task = encode_task(vectors.keys, [["a", "b"], ["c"]], ["c", "a"])
    next_item_metrics(vectors.matrix, task, k=10)   # {"hr": .., "ndcg": .., "users": 2}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

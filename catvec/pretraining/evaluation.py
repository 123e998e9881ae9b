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

from catvec.pretraining.config import EventOptions, PretrainConfig, SequenceRules
from catvec.base.errors import CatvecError
from catvec.base.layout import HOLDOUT_FILE

log = logging.getLogger(__name__)

HOLDOUT_FORMAT = "catvec-holdout"
ROLES = {"test": 0, "valid": 1}  # role -> position from the end of the user's history


def save_heldout(heldout, path, mode: str) -> Path:
    """Write the held-out (user, item, role) rows as JSON (keys of any text survive)."""
    from catvec.base.writes import write_json

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


def build_tasks(table, keys: list[str], rules: SequenceRules):
    """Events -> ({role: NextItemTask}, training counts per key row, held-out rows).

    `rules` are the corpus's sequence rules (its holdout included), so the split sees the
    corpus's own 'last item'. A user with n events (after ordering and collapse) is
    evaluated when n >= holdout + 2; the test target is the last event, the validation
    target (holdout last2) the one before.
    """
    import polars as pl

    from catvec.pretraining.corpus import held_out_mask, sequence_frame

    if hasattr(table, "build_tasks"):  # an input split into shard files (catvec.pretraining.split): a shard at a time
        return table.build_tasks(keys, rules)
    if table.basket:
        return _basket_tasks(table, keys, rules)
    holdout = rules.holdout_items
    lf = sequence_frame(table, rules)
    n = pl.len().over("user")
    frame = (lf.with_columns(held=held_out_mask(holdout), from_end=n - 1 - pl.int_range(pl.len()).over("user"),
                             eligible=n >= holdout + 2)
             .select("user", "item", "held", "from_end", "eligible").collect())
    index = pl.DataFrame({"item": pl.Series(keys, dtype=pl.Utf8), "idx": np.arange(len(keys), dtype=np.int64)})
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


def _basket_tasks(table, keys: list[str], rules: SequenceRules):
    """Basket holdout: the held-out item of each held-out basket is the target, the rest
    of its basket the query (catvec.pretraining.corpus.mark_basket_holdout)."""
    import polars as pl

    from catvec.pretraining.corpus import mark_basket_holdout, sequence_frame

    frame = mark_basket_holdout(sequence_frame(table, rules), rules.basket_holdout_share).collect()
    index = pl.DataFrame({"item": pl.Series(keys, dtype=pl.Utf8), "idx": np.arange(len(keys), dtype=np.int64)})
    frame = frame.join(index, on="item", how="left", maintain_order="left").with_columns(pl.col("idx").fill_null(-1))
    train_idx = frame.filter(~pl.col("_held") & (pl.col("idx") >= 0))["idx"].to_numpy()
    counts = np.bincount(train_idx, minlength=len(keys)).astype(np.int64)
    heldout = frame.filter(pl.col("_held")).select(user=pl.col("group"), item="item", role="role")
    tasks = {}
    for role in ROLES:
        rows = frame.filter(pl.col("role") == role)
        history = rows.filter(~pl.col("_held"))
        lengths = history.group_by("seq", maintain_order=True).len()["len"].to_numpy()
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        tasks[role] = NextItemTask(indptr, history["idx"].to_numpy(), rows.filter(pl.col("_held"))["idx"].to_numpy())
    return tasks, counts, heldout


def score_tasks(vectors, tasks: dict, counts: np.ndarray, *, k: int = 10, query_last: int = 1,
                scorer: str | None = None, min_support: int | None = None) -> dict:
    """{role: task} -> the quality block of a manifest: HR@k / NDCG@k of every scorer the
    vectors support and of popularity; "vectors" holds the chosen scorer's numbers.
    query_last = 0: the query is every history item (baskets)."""
    from catvec.base.scoring import SCORERS, make_scorer

    names = [n for n in SCORERS if n != "context" or vectors.context is not None]
    chosen = scorer or vectors.scorer
    scorers = {n: make_scorer(vectors, n, min_support) for n in names}
    supports = {n: s.min_support for n, s in scorers.items()}
    quality = {"k": k, "query_last": query_last, "scorer": chosen, "min_support": supports[chosen],
               "supports": supports, "vectors": {}, "popularity": {}, "scorers": {n: {} for n in names}}
    for role, task in tasks.items():
        for name in names:
            quality["scorers"][name][role] = next_item_metrics(scorers[name], task, k=k, query_last=query_last)
        quality["vectors"][role] = quality["scorers"][chosen][role]
        quality["popularity"][role] = popularity_metrics(counts, task, k=k)
        quality["users"] = task.n_users
        quality["target_coverage"] = round(float((task.targets >= 0).mean()) if task.n_users else 0.0, 4)
    return quality


def evaluate_version(path, events=None, *, k: int = 10, query_last: int | None = None,
                     scorer: str | None = None, min_support: int | None = None) -> dict:
    """Score a version trained with --holdout on its held-out items (every scorer; the
    default one is `scorer`, else the version's).

    `events` is the events file it was trained on (default: the path in its manifest).
    """
    from catvec.base.scoring import check_scorer

    from catvec.base.manifest import read_manifest, resolve_version_dir
    from catvec.base.vectors import load_vectors
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
    frame = events if not isinstance(events, (str, Path, type(None))) else None
    options = EventOptions.of(dataclasses.replace(cfg, events="" if frame is not None else str(source)))
    table = read_events_table(options, frame)
    vectors = load_vectors(directory)
    if scorer is not None:
        check_scorer(scorer, vectors)
    tasks, counts, heldout = build_tasks(table, vectors.keys, SequenceRules.of(cfg))
    _, stored = load_heldout(directory / HOLDOUT_FILE)
    if not heldout.equals(stored):
        raise CatvecError(f"{source}: its users' last items differ from {directory / HOLDOUT_FILE} "
                          f"({heldout.height} vs {stored.height} held-out rows); pass the events this version was trained on")
    query_last = 0 if mode == "basket" else (query_last or cfg.query_last)
    return {"holdout": mode, **score_tasks(vectors, tasks, counts, k=k, query_last=query_last, scorer=scorer,
                                           min_support=min_support)}


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


@dataclass
class TaskParts:
    """A task in parts on disk (a shard each, catvec.pretraining.split), loaded one at a
    time for scoring: memory for one shard's histories, not every user's."""

    paths: list           # .npz files with indptr, items, targets
    targets: np.ndarray   # (n_users,) every part's targets, in order

    @property
    def n_users(self) -> int:
        return len(self.targets)

    def parts(self):
        for path in self.paths:
            with np.load(path) as data:
                yield NextItemTask(data["indptr"], data["items"], data["targets"])


def task_parts(task):
    """The NextItemTasks of a task: itself, or a TaskParts' parts one at a time."""
    return task.parts() if isinstance(task, TaskParts) else [task]


def encode_task(keys: list[str], histories: list[list[str]], targets: list[str]) -> NextItemTask:
    """Plain lists of keys -> NextItemTask over `keys` (small inputs; the pipeline encodes in polars)."""
    index = {k: i for i, k in enumerate(keys)}
    lengths = [len(h) for h in histories]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.array([index.get(k, -1) for h in histories for k in h], dtype=np.int64)
    return NextItemTask(indptr, items, np.array([index.get(k, -1) for k in targets], dtype=np.int64))


def next_item_metrics(scorer, task: NextItemTask, k: int = 10, query_last: int = 1,
                      batch_size: int = 1024) -> dict:
    """HR@k and NDCG@k of a `catvec.base.scoring.Scorer` (or a plain matrix: cosine) with the
    query = sum of the rows of the last `query_last` items (0 = all of them)."""
    from catvec.base.scoring import Scorer, unit_rows

    if not isinstance(scorer, Scorer):
        unit = unit_rows(scorer)
        scorer = Scorer("cosine", unit, unit, np.ones(len(unit), dtype=bool))
    ranks = [_scorer_ranks(scorer, part, query_last, batch_size) for part in task_parts(task)]
    return summarize(np.concatenate([np.zeros(0, dtype=np.int64), *ranks]), k)


def _scorer_ranks(scorer, task: NextItemTask, query_last: int, batch_size: int) -> np.ndarray:
    n = len(scorer.candidates)
    queries, has_query = scorer.query_vectors(task.indptr, task.items, query_last)  # (users, dim), (users,)
    blocked = ~scorer.allowed

    def scores(lo: int, hi: int) -> np.ndarray:
        s = queries[lo:hi] @ scorer.candidates.T                       # (batch, n_items)
        s[:, blocked] = -np.inf
        return s

    ranks = _target_ranks(scores, task, n, batch_size)
    ranks[~has_query] = n
    ranks[(task.targets >= 0) & blocked[np.maximum(task.targets, 0)]] = n  # never listed: a miss
    return ranks


def popularity_metrics(counts: np.ndarray, task: NextItemTask, k: int = 10, batch_size: int = 1024) -> dict:
    """HR@k and NDCG@k of ranking by `counts` (training frequency per item row); ties by row."""
    from catvec.base.scoring import popularity_scores

    n = len(counts)
    score = popularity_scores(counts)  # distinct: the count, then the lower row first

    def scores(lo: int, hi: int) -> np.ndarray:
        return np.broadcast_to(score, (hi - lo, n)).copy()

    ranks = [_target_ranks(scores, part, n, batch_size) for part in task_parts(task)]
    return summarize(np.concatenate([np.zeros(0, dtype=np.int64), *ranks]), k)


def summarize(ranks: np.ndarray, k: int) -> dict:
    """0-based ranks -> {"hr", "ndcg", "ndcg_se" (standard error of the mean), "users", "k"}."""
    hit = ranks < k
    gains = np.where(hit, 1.0 / np.log2(np.minimum(ranks, k) + 2.0), 0.0)
    n = len(ranks)
    return {"hr": float(hit.mean()) if n else float("nan"), "ndcg": float(gains.mean()) if n else float("nan"),
            "ndcg_se": float(gains.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
            "users": int(n), "k": int(k)}


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

"""The leave-last-out split: the held-out items file, and next-item tasks built from events.

`pretrain --holdout last` keeps each user's last item out of the corpus (`last2` also the
one before it, the validation item) and stores the held-out (user, item, role) triples in
the version as holdout.json. Evaluation rebuilds every user's ordered history from the
same events with the same extraction rules (catvec.corpus.sequence_frame), checks that
its last items are exactly the stored ones, and scores the vectors on them:

    quality = evaluate_version("artifacts/latest", events="data/events.csv")
    quality["vectors"]["test"]["hr"], quality["popularity"]["test"]["hr"]
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from catvec.config import HOLDOUT_MODES, PretrainConfig, parse_duration
from catvec.errors import CatvecError

log = logging.getLogger(__name__)

HOLDOUT_FILE = "holdout.json"
HOLDOUT_FORMAT = "catvec-holdout"
ROLES = {"test": 0, "valid": 1}  # role -> position from the end of the user's history


def save_heldout(heldout, path, mode: str) -> Path:
    """Write the held-out (user, item, role) rows as JSON (keys of any text survive)."""
    from catvec.vectors import write_json

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


def extraction_args(cfg: PretrainConfig) -> dict:
    gap = parse_duration(cfg.session_gap, "session_gap") if cfg.session_gap else None
    return {"session_gap_s": gap, "collapse_repeats": cfg.collapse_repeats}


def build_tasks(table, keys: list[str], holdout: int, *, session_gap_s=None, collapse_repeats=True):
    """Events -> ({role: NextItemTask}, training counts per key row, held-out rows).

    A user with n events (after ordering and collapse) is evaluated when n >= holdout + 2;
    the test target is the last event, the validation target (holdout=2) the one before.
    """
    import polars as pl

    from catvec.corpus import held_out_mask, sequence_frame
    from catvec.evaluate import NextItemTask

    lf = sequence_frame(table, session_gap_s=session_gap_s, collapse_repeats=collapse_repeats)
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
    from catvec.evaluate import next_item_metrics, popularity_metrics

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
    from catvec.pipeline import read_events_step
    from catvec.vectors import load_vectors, read_manifest, resolve_version_dir

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
        table = read_events_step(cfg)
    else:
        table = read_events_step(cfg, table)
    vectors = load_vectors(directory)
    tasks, counts, heldout = build_tasks(table, vectors.keys, HOLDOUT_MODES[mode], **extraction_args(cfg))
    _, stored = load_heldout(directory / HOLDOUT_FILE)
    if not heldout.equals(stored):
        raise CatvecError(f"{source}: its users' last items differ from {directory / HOLDOUT_FILE} "
                          f"({heldout.height} vs {stored.height} held-out rows); pass the events this version was trained on")
    return {"holdout": mode, **score_tasks(vectors, tasks, counts, k=k, query_last=query_last or cfg.query_last)}

"""A new version against its parent: alignment, drift, the seed-noise baseline, the gate.

Two trainings of the same data land in unrelated coordinate systems (skip-gram is only
defined up to a rotation), so a model fine-tuned on one version reads noise from the
next. A version with a parent (OUT/latest when the run starts) is therefore:

1. aligned: rotated into the parent's space by orthogonal Procrustes fitted on the
   anchors, the shared keys seen at least `align_min_count` times in both. The same
   rotation is applied to input and context vectors, so every score (cosine, input .
   context) is unchanged: alignment never changes quality;
2. compared: per frequency band, neighbour overlap@10 with the parent (rotation-free)
   and the aligned cosine of each shared key; new and dropped keys by count and by
   traffic; with a holdout, the parent's quality on the new version's held-out items;
3. judged against seed noise: the same numbers between two seeds of the parent's training
   on the parent's data (`seed_noise`: two seeds on a `noise_sample` share of its
   sequences, about 0.4 of a training; or one full extra training). The first run that needs it
   measures it and stores it beside the parent (OUT/<parent>/noise.json, with its sha256 in
   noise.json.sha256: an edited or damaged one is measured again, never trusted), so a first
   version costs nothing extra and a second child of the same parent reuses it;
4. gated: `gate_decision` refuses a version whose anchor overlap falls below
   `gate_drift` x the noise overlap (or that cannot be compared: too few anchors), that
   lost more than `gate_lost_keys` of the parent's keys or `gate_lost_traffic` of its
   traffic, whose new keys carry more than `gate_new_traffic` of the events or one new
   key more than `gate_new_key` (a flood), or whose HR@10 falls more than
   `gate_quality_se` standard errors below the parent's on the same users (the held-out
   items with --holdout, else the last items of a sample of the corpus's sequences).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from catvec.base.vectors import Vectors

log = logging.getLogger(__name__)

NEIGHBOURS = 10
# Frequency bands by training count: (label, lowest count, highest count or None).
BANDS = (("1-4", 1, 4), ("5-19", 5, 19), ("20-99", 20, 99), ("100+", 100, None))
# Keys whose neighbour lists are compared, a fixed sample: ranking one key's neighbours costs
# a pass over every key, so the sample, not the vocabulary, bounds the work. 600 anchors
# put the gate's mean overlap within about +-0.01 (standard error), 200 a band's within +-0.02.
MAX_QUERIES = 200           # per frequency band
MAX_ANCHOR_QUERIES = 600    # anchors: the figure the gate reads
MIN_BLOCK = 64              # queries ranked at once: at least this many, else `dim` (scores within keys x dim)
MIN_GATE_ANCHORS = 30       # fewer anchors: too little to judge drift, the gate cannot compare (refuses)
MIN_NOISE_ANCHORS = 50      # a sampled seed-noise baseline needs this many keys seen >= align_min_count times


# ---- alignment -------------------------------------------------------------------------

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


def _median_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return round(median_cosine(a, b), 4)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return np.einsum("ij,ij->i", a, b) / np.maximum(na * nb, 1e-12)


def relative_residual(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / ||b|| (Frobenius): 0 = the same points."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


# ---- drift -------------------------------------------------------------------------------

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


def seed_noise(corpus, cfg, vectors: Vectors, share: float = 1.0, on_epoch=None) -> dict:
    """The drift two seeds of the same training show on the same data. share = 1: train
    again with another seed and compare with `vectors` (one training). share < 1: two seeds
    trained on a seeded sample of that share of the corpus's sequences and compared with
    each other (about 2 x share of a training); it reads a key's noise at a given training
    count, so the anchors are the keys seen >= align_min_count times in the sample. A sample
    with fewer than MIN_NOISE_ANCHORS such keys: measured in full instead.
    on_epoch(epoch, total, info): progress over every epoch of the noise trainings."""
    import dataclasses
    import tempfile

    from catvec.pretraining.config import SkipGram
    from catvec.pretraining.skipgram import train_vectors

    seed = cfg.seed + 1000003
    with tempfile.TemporaryDirectory(prefix="catvec-noise-") as tmp:
        sample = sample_corpus(corpus, share, cfg.seed, Path(tmp) / "corpus.txt", cfg.align_min_count) \
            if share < 1 else None
        runs = 2 if sample is not None else 1
        progress = _noise_progress(on_epoch, runs)
        if sample is None:
            reference, how = vectors, {"method": "full", "sample": 1.0}
        else:
            reference, _ = train_vectors(sample[0], SkipGram.of(cfg), on_epoch=progress(0), min_count=cfg.min_count)
            how = {"method": "sample", **sample[1]}
        other, _ = train_vectors(sample[0] if sample else corpus, SkipGram.of(dataclasses.replace(cfg, seed=seed)),
                                 on_epoch=progress(runs - 1), min_count=cfg.min_count)
    other, _ = align(other, reference, cfg.align_min_count)
    report = compare(other, reference, cfg.align_min_count)
    report.update(seed=seed, measured=how)
    report["anchors"]["min_count"] = cfg.align_min_count
    log.info("seed noise (%s): anchor overlap@10 %s, median cosine %s", how["method"], report["anchors"]["overlap"],
             report["anchors"]["cosine"])
    return report


def _noise_progress(on_epoch, runs: int):
    """progress(run) -> the on_epoch of that noise training, counting epochs over all runs."""
    def progress(run: int):
        def report(epoch, total, info):
            log.info("seed noise: epoch %d/%d", run * total + epoch, runs * total)
            if on_epoch is not None:
                on_epoch(run * total + epoch, runs * total, info)
        return report
    return progress


def sample_corpus(corpus, share: float, seed: int, path, min_count: int):
    """(Corpus, record) of a seeded `share` of the corpus's lines written at `path`, or None
    when fewer than MIN_NOISE_ANCHORS keys are seen >= min_count times in it (too few
    anchors for a trustworthy figure: the caller measures in full)."""
    import dataclasses

    rng = np.random.default_rng(seed + 7)
    counts = np.zeros(len(corpus.keys) + 1, dtype=np.int64)
    lines = tokens = total = 0
    with open(corpus.path, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for line in src:
            total += 1
            if rng.random() >= share:
                continue
            ids = np.asarray(line.split(), dtype=np.int64)
            np.add.at(counts, np.minimum(ids, len(counts) - 1), 1)  # a key twice in a line counts twice
            tokens += len(ids)
            lines += 1
            dst.write(line)
    anchors = int((counts[:-1] >= min_count).sum())
    if anchors < MIN_NOISE_ANCHORS:
        log.info("seed noise: a %.0f%% sample holds %d keys seen >= %d times (< %d): measured in full", 100 * share,
                 anchors, min_count, MIN_NOISE_ANCHORS)
        return None
    record = {"sample": share, "sequences": lines, "of_sequences": total, "tokens": tokens,
              "sample_anchors": anchors}
    # the full corpus's line lengths stay: a basket run's window is the parent's (its longest basket)
    return dataclasses.replace(corpus, path=Path(path), stats={**corpus.stats, "tokens": tokens}, counts=None,
                               length_counts=None), record


def read_noise(path, min_count: int, sample: float = 0.0) -> dict | None:
    """A stored seed-noise baseline (OUT/<parent>/noise.json), or None when it must be
    measured again: missing, measured with another align_min_count or on a smaller sample
    than `sample` (a full measurement serves every share), or not to be trusted (its sha256
    marker missing or not matching: edited or damaged; not a baseline)."""
    from catvec.base.errors import CatvecError
    from catvec.base.store import read_checked_json

    try:
        stored = read_checked_json(path)
    except CatvecError as exc:
        if path.exists():
            log.warning("seed-noise baseline not trusted, measured again: %s", exc)
        return None
    anchors = stored.get("anchors") if isinstance(stored, dict) else None
    overlap = anchors.get("overlap") if isinstance(anchors, dict) else None
    if not isinstance(overlap, (int, float)) or not 0 < overlap <= 1 or not isinstance(stored.get("bands"), dict):
        log.warning("seed-noise baseline %s is not one (anchor overlap %r), measured again", path, overlap)
        return None
    measured = stored.get("measured") if isinstance(stored.get("measured"), dict) else {}
    if measured.get("sample", 1.0) < sample:
        return None
    return stored if anchors.get("min_count") == min_count else None


def paired_validation(vectors: Vectors, parent: Vectors, cfg, corpus) -> dict:
    """HR@10 / NDCG@10 of `vectors` and of `parent` on the same sequences: a seeded sample
    of the corpus's lines (sequences, or baskets) of about `tune_events` tokens, the size of
    the tuner's sample; each line's last item is the target, the items before it the query
    history. One pass over the corpus file, no training and no second read of the events;
    both versions saw these events or older ones, so the figure compares, it does not
    measure generalisation."""
    from catvec.pretraining.evaluation import NextItemTask, score_tasks

    tokens = max(int(corpus.stats.get("tokens", 0)), 1)
    share = min(1.0, cfg.tune_events / tokens)
    rng = np.random.default_rng(cfg.seed)
    lengths, items = [], []
    with open(corpus.path, encoding="utf-8") as fh:
        for line in fh:
            if rng.random() >= share:
                continue
            ids = line.split()
            if len(ids) >= 2:
                lengths.append(len(ids))
                items.extend(ids)
    ids = np.asarray(items, dtype=np.int64)
    ends = np.cumsum(lengths, dtype=np.int64)
    is_target = np.zeros(len(ids), dtype=bool)
    is_target[ends - 1] = True
    indptr = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64) - 1)])
    query_last = 0 if cfg.basket_col else cfg.query_last
    out = {"lines": len(lengths), "tokens": int(len(ids)), "users": len(lengths)}
    for name, v in (("vectors", vectors), ("parent", parent)):
        rows = np.asarray([v.key_to_index.get(k, -1) for k in corpus.keys] + [-1], dtype=np.int64)
        task = NextItemTask(indptr, rows[ids[~is_target]], rows[ids[is_target]])
        counts = v.counts if v.counts is not None else np.zeros(len(v), dtype=np.int64)
        out[name] = score_tasks(v, {"valid": task}, counts, query_last=query_last)
    log.info("validation HR@10 on %d sequences: %.4f, the parent's %.4f", out["lines"],
             out["vectors"]["vectors"]["valid"]["hr"], out["parent"]["vectors"]["valid"]["hr"])
    return out


# ---- the gate ------------------------------------------------------------------------------

def gate_decision(drift: dict | None, quality: dict | None, parent_quality: dict | None, cfg) -> dict:
    """Promote or keep as a candidate. Every check records its figure, its threshold and
    whether it passed ({"figure", "threshold", "passed", "line"}); each failed check is one
    reason line naming the numbers; `force` promotes anyway (and says so). Too few anchors
    (or an alignment that was skipped) is "cannot compare": refused, never a silent pass."""
    checks = {}
    if drift is not None:
        checks["drift"] = _drift_check(drift, cfg)
        checks.update(_key_checks(drift, cfg))
    if quality is not None and parent_quality is not None:
        checks["quality"] = _quality_check(quality, parent_quality, cfg)
    reasons = [c["reason"] for c in checks.values() if not c["passed"]]
    promoted = not reasons or cfg.force
    return {"promoted": promoted, "forced": bool(reasons and cfg.force), "reasons": reasons, "checks": checks}


def _check(name: str, figure, threshold, passed: bool, line: str, reason: str = "") -> dict:
    return {"figure": figure, "threshold": threshold, "passed": bool(passed), "line": f"{name}: {line}",
            "reason": reason or f"{name}: {line}"}


def _drift_check(drift: dict, cfg) -> dict:
    ratio = drift.get("overlap_ratio")
    anchors = drift.get("anchors", {}).get("keys", 0)
    why = drift.get("not_compared")
    if why is None and anchors < MIN_GATE_ANCHORS:
        why = f"{anchors} anchors (shared keys seen >= {cfg.align_min_count} times in both), fewer than {MIN_GATE_ANCHORS}"
    if why is None and ratio is None:
        why = "no seed-noise baseline"
    if why is not None:
        return _check("drift", None, cfg.gate_drift, False, f"cannot compare with the parent ({why})",
                      f"cannot compare with the parent: {why}")
    noise_overlap = drift["noise"]["anchors"]["overlap"]
    check = _check("drift", ratio, cfg.gate_drift, ratio >= cfg.gate_drift,
                   f"neighbour overlap@10 {drift['anchors']['overlap']:.3f} = {ratio:.2f}x seed noise "
                   f"{noise_overlap:.3f} (min {cfg.gate_drift:g}x)",
                   f"neighbour overlap@10 with the parent is {drift['anchors']['overlap']:.3f}, {ratio:.2f}x the "
                   f"seed-noise overlap {noise_overlap:.3f} (gate_drift {cfg.gate_drift})")
    check.update(overlap=drift["anchors"]["overlap"], noise_overlap=noise_overlap, ratio=ratio)
    return check


def _key_checks(drift: dict, cfg) -> dict:
    """Keys and traffic lost against the parent, traffic of new keys and of the largest one."""
    checks = {}
    if "dropped" not in drift:
        return checks
    lost = drift.get("dropped_share", 0.0)
    bands = ", ".join(f"{b['dropped']}/{b['keys']} of {name}" for name, b in (drift.get("dropped_bands") or {}).items()
                      if b["dropped"])
    checks["lost_keys"] = _check("lost keys", lost, cfg.gate_lost_keys, lost <= cfg.gate_lost_keys,
                                 f"{drift['dropped']} of the parent's keys gone, {lost:.1%} (max {cfg.gate_lost_keys:.0%})"
                                 + (f"; by the parent's counts: {bands}" if bands else ""))
    figures = (("lost_traffic", "lost traffic", drift.get("dropped_traffic"), cfg.gate_lost_traffic,
                "of the parent's training events were on keys now gone"),
               ("new_traffic", "new keys", drift.get("new_traffic"), cfg.gate_new_traffic,
                f"of the training events are on {drift['new']} key{'' if drift['new'] == 1 else 's'} "
                f"the parent did not have"))
    for name, label, figure, threshold, text in figures:
        if figure is not None:
            checks[name] = _check(label, figure, threshold, figure <= threshold,
                                  f"{figure:.1%} {text} (max {threshold:.0%})")
    largest = drift.get("largest_new")
    if largest and largest.get("traffic") is not None:
        figure = largest["traffic"]
        checks["new_key"] = _check("largest new key", figure, cfg.gate_new_key, figure <= cfg.gate_new_key,
                                   f"{largest['key']!r} carries {figure:.1%} of the training events "
                                   f"(max {cfg.gate_new_key:.0%})")
    return checks


def _quality_check(quality: dict, parent_quality: dict, cfg) -> dict:
    """HR@10 against the parent's on the same users: the held-out test items (--holdout), else
    the last items of a sample of the corpus's sequences (`paired_validation`)."""
    role = "test" if "test" in quality["vectors"] else "valid"
    mine, theirs = quality["vectors"][role], parent_quality["vectors"][role]
    se = float(np.sqrt(_hr_var(mine) + _hr_var(theirs)))
    where = "held-out" if role == "test" else "validation"
    gap = round((mine["hr"] - theirs["hr"]) / se, 2) if se > 0 else 0.0  # the figure: the change in standard errors
    check = _check("quality", gap, -cfg.gate_quality_se,
                   not mine["hr"] < theirs["hr"] - cfg.gate_quality_se * se,
                   f"{where} HR@10 {mine['hr']:.4f} vs the parent's {theirs['hr']:.4f} on the same {mine['users']} users, "
                   f"{gap:+.2f} standard errors of {se:.4f} (min -{cfg.gate_quality_se:g})",
                   f"{where} HR@10 {mine['hr']:.4f} is below the parent's {theirs['hr']:.4f} on the same "
                   f"items by more than {cfg.gate_quality_se:g} standard errors ({se:.4f})")
    check.update(hr=mine["hr"], parent_hr=theirs["hr"], se=round(se, 4), threshold_se=cfg.gate_quality_se, split=role)
    return check


def _hr_var(m: dict) -> float:
    n = max(int(m.get("users", 0)), 1)
    return m["hr"] * (1.0 - m["hr"]) / n


# ---- the versions of one output directory -------------------------------------------------

def version_rows(out) -> list[dict]:
    """One row per complete version of OUT, oldest first: version, parent, status, keys,
    held-out HR@10, drift (anchor overlap / seed-noise overlap), the gate's checks. Status:
    latest; promoted (was latest once); refused (the gate's reasons in the note); candidate
    (kept out for another reason: its parent was no longer latest at publish time);
    interrupted (complete on disk and meant to be published, but the run was killed
    before `latest` moved and the promotion was recorded)."""
    from catvec.base.errors import CatvecError
    from catvec.base.layout import PROMOTIONS
    from catvec.base.store import VersionStore, read_manifest

    store = VersionStore(out)
    if not store.root.is_dir():
        raise CatvecError(f"{store.root}: no such output directory; pass the OUT of `catvec pretrain --out OUT`")
    latest = store.latest_name()
    entries = store.promotions()
    if entries and entries[-1].get("version") != latest:  # recorded, killed before latest moved
        entries[-1] = dict(entries[-1], interrupted=True)
    promoted = {entry["version"] for entry in entries if not entry.get("interrupted")}
    recorded = (store.root / PROMOTIONS).is_file()  # OUTs older than the record: trust the manifests
    rows = []
    for name in store.versions():
        try:
            manifest = read_manifest(store.root / name, verify=False)
        except CatvecError as exc:
            rows.append({"version": name, "status": "unreadable", "note": str(exc)})
            continue
        gate = manifest.get("gate") or {}
        status, note = version_status(name, gate, latest, promoted, recorded)
        quality = (manifest.get("quality") or {}).get("vectors", {}).get("test", {})
        drift = manifest.get("drift") or {}
        rows.append({"version": name, "parent": manifest.get("parent") or "", "status": status,
                     "keys": (manifest.get("training") or {}).get("vocab_size"),
                     "hr10": quality.get("hr"), "drift": drift.get("overlap_ratio"), "note": note,
                     "checks": check_summary(gate)})
    return rows


def version_status(name: str, gate: dict, latest: str | None, promoted: set, recorded: bool) -> tuple[str, str]:
    """(status, note) of one version; see `version_rows`."""
    if name == latest:
        return "latest", "forced past: " + "; ".join(gate["reasons"]) if gate.get("forced") else ""
    if name in promoted or (not recorded and gate.get("promoted", True)):
        return "promoted", ""
    if gate.get("reasons") and not gate.get("forced"):
        return "refused", "; ".join(gate["reasons"])
    if gate.get("held"):
        return "candidate", gate["held"]
    return "interrupted", "killed before publishing; `catvec promote` publishes it"


def check_summary(gate: dict) -> str:
    """The gate's checks in one short cell: name figure/threshold, a * on each that failed."""
    cells = []
    for name, c in (gate.get("checks") or {}).items():
        if not isinstance(c, dict) or "passed" not in c:
            continue
        figure = "n/a" if c["figure"] is None else f"{c['figure']:.3g}"
        cells.append(f"{name} {figure}/{c['threshold']:g}{'' if c['passed'] else '*'}")
    return " ".join(cells)

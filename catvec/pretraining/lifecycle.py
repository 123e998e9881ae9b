"""A new version against its parent: the promotion gate and the states of the versions.

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

Steps 1-3 have their own modules: catvec.pretraining.alignment (1), .drift (2) and .noise
(3); catvec.pretraining.parents ties them to the store. This module holds the quality
comparison on the same sequences (`paired_validation`), the gate (4) and the rows of
`catvec versions`.
"""

from __future__ import annotations

import logging

import numpy as np

from catvec.base.vectors import Vectors
from catvec.pretraining.config import Gate

log = logging.getLogger(__name__)

MIN_GATE_ANCHORS = 30       # fewer anchors: too little to judge drift, the gate cannot compare (refuses)


# ---- quality on the same sequences --------------------------------------------------------

def paired_validation(vectors: Vectors, parent: Vectors, corpus, sample_tokens: int, seed: int,
                      query_last: int) -> dict:
    """HR@10 / NDCG@10 of `vectors` and of `parent` on the same sequences: a sample (seeded
    by `seed`) of the corpus's lines (sequences, or baskets) of about `sample_tokens` tokens,
    the size of the tuner's sample; each line's last item is the target, the mean of the
    `query_last` items before it the query (0 = all of them: baskets). One pass over the corpus file, no training and no second read of the events;
    both versions saw these events or older ones, so the figure compares, it does not
    measure generalisation."""
    from catvec.pretraining.evaluation import NextItemTask, score_tasks

    tokens = max(int(corpus.stats.get("tokens", 0)), 1)
    share = min(1.0, sample_tokens / tokens)
    rng = np.random.default_rng(seed)
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

def gate_decision(drift: dict | None, quality: dict | None, parent_quality: dict | None, gate: Gate,
                  anchors: int = 20) -> dict:
    """Promote or keep as a candidate, by the thresholds of the gate group `gate`. Every
    check records its figure, its threshold and whether it passed ({"figure", "threshold",
    "passed", "line"}); each failed check is one reason line naming the numbers; `force`
    promotes anyway (and says so). Too few anchors (keys seen >= `anchors` times in both:
    align_min_count) or an alignment that was skipped is "cannot compare": refused, never a
    silent pass."""
    checks = {}
    if drift is not None:
        checks["drift"] = _drift_check(drift, gate, anchors)
        checks.update(_key_checks(drift, gate))
    if quality is not None and parent_quality is not None:
        checks["quality"] = _quality_check(quality, parent_quality, gate)
    reasons = [c["reason"] for c in checks.values() if not c["passed"]]
    promoted = not reasons or gate.force
    return {"promoted": promoted, "forced": bool(reasons and gate.force), "reasons": reasons, "checks": checks}


def _check(name: str, figure, threshold, passed: bool, line: str, reason: str = "") -> dict:
    return {"figure": figure, "threshold": threshold, "passed": bool(passed), "line": f"{name}: {line}",
            "reason": reason or f"{name}: {line}"}


def _drift_check(drift: dict, gate: Gate, min_count: int) -> dict:
    ratio = drift.get("overlap_ratio")
    anchors = drift.get("anchors", {}).get("keys", 0)
    why = drift.get("not_compared")
    if why is None and anchors < MIN_GATE_ANCHORS:
        why = f"{anchors} anchors (shared keys seen >= {min_count} times in both), fewer than {MIN_GATE_ANCHORS}"
    if why is None and ratio is None:
        why = "no seed-noise baseline"
    if why is not None:
        return _check("drift", None, gate.gate_drift, False, f"cannot compare with the parent ({why})",
                      f"cannot compare with the parent: {why}")
    noise_overlap = drift["noise"]["anchors"]["overlap"]
    check = _check("drift", ratio, gate.gate_drift, ratio >= gate.gate_drift,
                   f"neighbour overlap@10 {drift['anchors']['overlap']:.3f} = {ratio:.2f}x seed noise "
                   f"{noise_overlap:.3f} (min {gate.gate_drift:g}x)",
                   f"neighbour overlap@10 with the parent is {drift['anchors']['overlap']:.3f}, {ratio:.2f}x the "
                   f"seed-noise overlap {noise_overlap:.3f} (gate_drift {gate.gate_drift})")
    check.update(overlap=drift["anchors"]["overlap"], noise_overlap=noise_overlap, ratio=ratio)
    return check


def _key_checks(drift: dict, gate: Gate) -> dict:
    """Keys and traffic lost against the parent, traffic of new keys and of the largest one."""
    checks = {}
    if "dropped" not in drift:
        return checks
    lost = drift.get("dropped_share", 0.0)
    bands = ", ".join(f"{b['dropped']}/{b['keys']} of {name}" for name, b in (drift.get("dropped_bands") or {}).items()
                      if b["dropped"])
    checks["lost_keys"] = _check("lost keys", lost, gate.gate_lost_keys, lost <= gate.gate_lost_keys,
                                 f"{drift['dropped']} of the parent's keys gone, {lost:.1%} (max {gate.gate_lost_keys:.0%})"
                                 + (f"; by the parent's counts: {bands}" if bands else ""))
    figures = (("lost_traffic", "lost traffic", drift.get("dropped_traffic"), gate.gate_lost_traffic,
                "of the parent's training events were on keys now gone"),
               ("new_traffic", "new keys", drift.get("new_traffic"), gate.gate_new_traffic,
                f"of the training events are on {drift['new']} key{'' if drift['new'] == 1 else 's'} "
                f"the parent did not have"))
    for name, label, figure, threshold, text in figures:
        if figure is not None:
            checks[name] = _check(label, figure, threshold, figure <= threshold,
                                  f"{figure:.1%} {text} (max {threshold:.0%})")
    largest = drift.get("largest_new")
    if largest and largest.get("traffic") is not None:
        figure = largest["traffic"]
        checks["new_key"] = _check("largest new key", figure, gate.gate_new_key, figure <= gate.gate_new_key,
                                   f"{largest['key']!r} carries {figure:.1%} of the training events "
                                   f"(max {gate.gate_new_key:.0%})")
    return checks


def _quality_check(quality: dict, parent_quality: dict, gate: Gate) -> dict:
    """HR@10 against the parent's on the same users: the held-out test items (--holdout), else
    the last items of a sample of the corpus's sequences (`paired_validation`)."""
    role = "test" if "test" in quality["vectors"] else "valid"
    mine, theirs = quality["vectors"][role], parent_quality["vectors"][role]
    se = float(np.sqrt(_hr_var(mine) + _hr_var(theirs)))
    where = "held-out" if role == "test" else "validation"
    gap = round((mine["hr"] - theirs["hr"]) / se, 2) if se > 0 else 0.0  # the figure: the change in standard errors
    check = _check("quality", gap, -gate.gate_quality_se,
                   not mine["hr"] < theirs["hr"] - gate.gate_quality_se * se,
                   f"{where} HR@10 {mine['hr']:.4f} vs the parent's {theirs['hr']:.4f} on the same {mine['users']} users, "
                   f"{gap:+.2f} standard errors of {se:.4f} (min -{gate.gate_quality_se:g})",
                   f"{where} HR@10 {mine['hr']:.4f} is below the parent's {theirs['hr']:.4f} on the same "
                   f"items by more than {gate.gate_quality_se:g} standard errors ({se:.4f})")
    check.update(hr=mine["hr"], parent_hr=theirs["hr"], se=round(se, 4), threshold_se=gate.gate_quality_se, split=role)
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
    from catvec.base.manifest import read_manifest
    from catvec.base.store import VersionStore

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

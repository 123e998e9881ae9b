"""A new version against its parent (OUT/latest when the run starts): the parent steps of pretrain.

    load_parent               the parent's vectors and manifest, checksums verified
    inherit_settings          the parent's chosen settings where this run left them open
    measure_seed_noise        the parent's seed-noise baseline (once; OUT/<parent>/noise.json),
                              on the parent's corpus (parent_corpus: the cache or its input again)
    compare_parent            align to the parent, drift beside that noise
    validate_against_parent   HR@10 of both on the same sequences (runs without a holdout)
    hold_as_candidate         a staged version marked as a candidate when latest moved meanwhile

The numbers are those of catvec.pretraining.alignment, .drift, .noise and .lifecycle; this
module ties them to the version store and the corpus cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

from catvec.base.config import apply_settings, group_names
from catvec.base.errors import CatvecError
from catvec.base.layout import DRIFT_FILE, LATEST, MANIFEST, MAP_FILE, NOISE_FILE
from catvec.base.steps import step
from catvec.base.manifest import finish_manifest, read_manifest
from catvec.base.store import VersionStore
from catvec.base.writes import write_checked_json
from catvec.pretraining.config import (EventOptions, Extraction, Lineage, PretrainConfig, Scoring, SequenceRules,
                                       SkipGram, Tuning)
from catvec.pretraining.corpus_cache import extract_corpus, find_cached_corpus
from catvec.pretraining.events import read_events_table
from catvec.pretraining.inputs import open_input
from catvec.pretraining.shards import wants_shards

log = logging.getLogger(__name__)

PARENT_GROUPS = ("events", "extraction", "sequences", "skipgram")  # what rebuilds a parent's corpus and training


@step(name="load-parent")
def load_parent(store: VersionStore, parent: str | None, lineage: Lineage, gated: bool, dim: int):
    """The parent version (OUT/latest when the run starts) when alignment, the gate (`gated`)
    or a warm start need it: (vectors, manifest), checksums verified; (None, None) without
    one. A warm start needs the parent's vectors to have this run's `dim`."""
    from catvec.base.vectors import load_vectors

    if parent is None or not (lineage.align or gated or lineage.warm_start):
        return None, None
    directory = store.root / parent
    try:
        vectors = load_vectors(directory)  # checks the manifest and every checksum
        manifest = read_manifest(directory, verify=False)
    except CatvecError as exc:
        raise CatvecError(f"parent version {parent} (OUT/latest) cannot be used: {exc}; promote a sound version "
                          f"with `catvec promote {store.root} VERSION`, or pass --no-align --no-gate") from None
    if lineage.warm_start and vectors.dim != dim:
        raise CatvecError(f"--warm-start: the parent {parent} has dim {vectors.dim}, this run dim {dim}; "
                          f"pass --dim {vectors.dim} or leave out --warm-start")
    return vectors, manifest


@step(name="inherit-settings")
def inherit_settings(open_: list[str], parent: str, parent_manifest: dict) -> tuple[dict | None, dict]:
    """A version with a parent keeps the parent's chosen settings (window, epochs, ns_exponent,
    sample, scorer, min_support) where this run left them open (`open_`, from
    autotune.open_settings): the same settings keep versions comparable (tuned afresh each
    night they can differ enough to move every neighbour list), and the nightly run skips the
    tuning trainings. Returns ({setting: value} as the parent's manifest has them, to be
    checked like flags by the caller: base.config.apply_settings; the tuning record), or
    (None, {}) when the parent lacks one of them."""
    params = parent_manifest.get("params") or {}
    missing = [n for n in open_ if params.get(n) is None or params.get(n) == ""]
    if missing:  # a parent without them (an older format): tune as usual
        return None, {}
    chosen = {n: params[n] for n in open_}
    supports = dict((parent_manifest.get("scoring") or {}).get("supports") or {})
    record = {"ran": False, "reason": f"kept the settings of the parent {parent} (--retune chooses them again)",
              "inherited_from": parent, "settings": list(open_), "chosen": chosen, "supports": supports}
    log.info("settings kept from the parent %s: %s", parent, ", ".join(f"{n}={v}" for n, v in chosen.items()))
    return chosen, record


@step(name="seed-noise")
def measure_seed_noise(store: VersionStore, parent: str, parent_vectors, parent_manifest: dict, corpus, vectors,
                       skipgram: SkipGram, min_count: int, anchors: int, share: float, on_epoch=None) -> dict:
    """The parent's seed-noise baseline: two seeds of its training on its data. Measured once,
    by the first run that needs it, and kept in OUT/<parent>/noise.json for every later child
    (a rerun after a refusal pays nothing). The parent's corpus comes from the corpus cache or
    is extracted again from its input when that is unchanged; when neither is possible the
    baseline is measured on this run's data (`corpus`, `skipgram`, `min_count`) instead, and
    says so. Measured on a sample of `share` (noise_sample) of the sequences, over the items
    seen `anchors` times (align_min_count; catvec.pretraining.noise.seed_noise); on_epoch
    reports its epochs."""
    from catvec.pretraining.noise import read_noise, seed_noise

    path = store.root / parent / NOISE_FILE
    stored = read_noise(path, anchors, share)
    if stored is not None:
        return stored
    found = parent_corpus(store, parent_manifest)
    if found is None:
        log.warning("the parent's corpus is gone (cache pruned, input changed): seed noise measured on this run's data")
        noise = seed_noise(corpus, skipgram, min_count, anchors, vectors, share, on_epoch)
        return {**noise, "from": "this version (the parent's data is no longer available)"}
    parent_cfg, parent_data = found
    noise = seed_noise(parent_data, SkipGram.of(parent_cfg), parent_cfg.min_count, anchors, parent_vectors, share,
                       on_epoch)
    noise = {**noise, "from": "parent"}
    try:
        write_checked_json(path, noise)
    except OSError as exc:  # a read-only parent: measured again next time, no harm
        log.warning("could not store the seed-noise baseline in %s (%s)", path, exc)
    return noise


def parent_corpus(store: VersionStore, parent_manifest: dict):
    """(config, Corpus) the parent was trained on: from OUT/.cache, or extracted again from
    its input if that still has the recorded checksum; None when neither works."""
    groups = group_names(PretrainConfig)
    wanted = {name for group in PARENT_GROUPS for name in groups[group]}  # its corpus and its training
    params = {k: v for k, v in (parent_manifest.get("params") or {}).items() if k in wanted}
    source = (parent_manifest.get("input") or {})
    if not params or source.get("path") in (None, "", "<DataFrame>"):
        return None
    where = str(store.root / (parent_manifest.get("version") or LATEST) / MANIFEST)
    parent_cfg = apply_settings(PretrainConfig(out=str(store.root)), params, where,
                                f"promote a sound version (catvec promote {store.root} VERSION) or pass --no-gate")
    options, rules, extraction = EventOptions.of(parent_cfg), SequenceRules.of(parent_cfg), Extraction.of(parent_cfg)
    try:
        found = find_cached_corpus(store.root, options, rules, source["checksum"])
        if found is None:
            watch, checksum = open_input(options)
            if checksum != source["checksum"]:
                return None
            table = None if wants_shards(options, extraction) else read_events_table(options)
            found = extract_corpus(table, store.root, options, rules, extraction, source["checksum"], watch)
    except (CatvecError, OSError, TypeError, KeyError) as exc:
        log.info("the parent's corpus cannot be rebuilt: %s", exc)
        return None
    return parent_cfg, found


@step(name="compare-parent")
def compare_parent(vectors, parent_vectors, parent_noise: dict, lineage: Lineage, gated: bool):
    """Align to the parent and measure the drift beside the parent's seed-noise baseline
    (when `gated`). Returns (vectors, record) where record holds alignment and drift."""
    from catvec.pretraining.alignment import align
    from catvec.pretraining.drift import drift_report

    record = {}
    anchors = lineage.align_min_count
    if lineage.align:
        vectors, record["alignment"] = align(vectors, parent_vectors, anchors)
    if gated:
        skipped = None if not lineage.align or record["alignment"]["applied"] else record["alignment"]["reason"]
        record["drift"] = drift_report(vectors, parent_vectors, anchors, parent_noise, skipped)
        record["drift"]["noise_from"] = parent_noise.get("from", "parent")
    return vectors, record


@step(name="validate-against-parent")
def validate_against_parent(vectors, parent_vectors, corpus, tuning: Tuning, scoring: Scoring, seed: int,
                            basket: bool) -> dict:
    """Without a holdout: HR@10 of this version and of its parent on the same sequences, the
    last items of a sample of the corpus of the tuner's sample size
    (catvec.pretraining.lifecycle.paired_validation)."""
    from catvec.pretraining.lifecycle import paired_validation

    return paired_validation(vectors, parent_vectors, corpus, tuning.tune_events, seed,
                             0 if basket else scoring.query_last)


def hold_as_candidate(staging: Path, reason: str) -> None:
    """Record in a staged version that it stays a candidate (`reason`): the gate block of its
    manifest and report.md are rewritten, and the manifest finished again."""
    from catvec.reports.render import write_report

    manifest = read_manifest(staging, verify=False)
    files = list(manifest.pop("files"))
    gate = manifest.get("gate") or {"promoted": False, "forced": False, "reasons": [], "checks": {}}
    manifest["gate"] = dict(gate, promoted=False, held=reason)
    write_report(staging, manifest, images=[f for f in (MAP_FILE, DRIFT_FILE) if f in files])
    finish_manifest(staging, manifest, files)


def publish_reason(parent: str | None, gate: dict | None) -> str:
    """How promotions.json records a pretrain version that moves latest: first, ungated, forced or gate."""
    if parent is None:
        return "first"
    if gate is None:
        return "ungated"
    return "forced" if gate["forced"] else "gate"

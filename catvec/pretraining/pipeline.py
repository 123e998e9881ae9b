"""The pretrain pipeline: `pretrain(cfg)`, the steps it calls top to bottom, and nothing else.

    pretrain(cfg, events=None)
        open_input (inputs: identity, checksum, identity) -> load_parent (parents; when OUT has a latest)
        -> find_cached_corpus? (corpus_cache) -> read_events_table (events)
        -> extract_corpus (corpus_cache; sharded when large: catvec.pretraining.shards)
        -> inherit_settings (parents; with a parent) | choose_settings (fills what was left
           open; catvec.pretraining.autotune)
        -> train_skipgram (warm start: from the parent)
        -> compose_cold (with item attributes, read by load_attributes before any work:
           vectors for keys with no history; catvec.base.attributes)
        -> measure_seed_noise (parents: the parent's, once) -> compare_parent (parents: align,
           drift vs that noise)
        -> evaluate_holdout (with a holdout; the parent's too) | validate_against_parent (without)
        -> gate (catvec.pretraining.lifecycle) -> build_manifest, export_version (version_dir: staging)
        -> publish_version (base.store: OUT/<version>; OUT/latest if promoted and latest is still
           the parent; else hold_as_candidate)

Each step is a plain function marked with `@step` (catvec.base.steps); the CLI calls
`pretrain` directly and the Prefect flow calls it with every step running as a task
(flows/adapter.py), so both run this code. Steps marked io=True read input that may
arrive late; they are the only ones a flow retries. `timed` records each part's seconds
in the manifest's timings.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from catvec.base.config import apply_settings
from catvec.base.layout import CACHE_DIR, MANIFEST
from catvec.base.manifest import read_manifest
from catvec.base.steps import step, timed
from catvec.base.store import ANY_PARENT, VersionStore, publish_version
from catvec.base.writes import check_writable
from catvec.pretraining.autotune import open_settings
from catvec.pretraining.config import (AttributeOptions, EventOptions, Extraction, Gate, Lineage, Output,
                                       PretrainConfig, Scoring, SequenceRules, SkipGram, Tuning)
from catvec.pretraining.corpus_cache import extract_corpus, find_cached_corpus
from catvec.pretraining.events import read_events_table
from catvec.pretraining.gates import enforce_gates
from catvec.pretraining.inputs import check_read, open_input, sweep_leftovers
from catvec.pretraining.parents import (compare_parent, hold_as_candidate, inherit_settings, load_parent,
                                        measure_seed_noise, publish_reason, validate_against_parent)
from catvec.pretraining.shards import wants_shards
from catvec.pretraining.split import SPLIT_DIR, is_split, open_split
from catvec.pretraining.version_dir import build_manifest, export_version

log = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    version: str
    path: Path            # OUT/<version>
    manifest: dict
    promoted: bool = True  # False: kept as a candidate, the promotion gate did not move `latest`
    gate: dict | None = None  # the gate's decision: {"promoted", "reasons": [...], ...}; None without a parent


# ---- steps ---------------------------------------------------------------------------

@step(name="choose-settings")
def choose_settings(events_table, corpus, skipgram: SkipGram, scoring: Scoring, tuning: Tuning,
                    rules: SequenceRules, basket: bool, on_trial=None) -> tuple[dict, dict]:
    """The settings left open (window, epochs, ns_exponent, sample, scorer, min_support),
    tuned on a validation split of a sample when there is enough data: (values, record)."""
    from catvec.pretraining import autotune

    return autotune.choose_settings(events_table, corpus.stats["tokens"], skipgram, scoring, tuning, rules, basket,
                                    on_trial=on_trial)


@step(name="train")
def train_skipgram(corpus, params: SkipGram, scoring: Scoring, min_count: int = 1, on_epoch=None, init=None):
    """Corpus -> (Vectors, training stats); the vectors carry the scorer and support of
    `scoring`. `init` (a warm start): known keys start from its input and context vectors."""
    from catvec.pretraining.skipgram import train_vectors

    vectors, stats = train_vectors(corpus, params, on_epoch=on_epoch, init=init, min_count=min_count)
    vectors.scorer, vectors.min_support = scoring.scorer or "cosine", scoring.min_support or 1
    return vectors, stats


@step(name="load-attributes", io=True)
def load_attributes(attributes: AttributeOptions, item_col: str):
    """The item attributes table (catvec.base.attributes), read and checked before any work."""
    from catvec.base.attributes import read_attributes

    return read_attributes(attributes.item_attributes, item_col, attributes.attribute_cols, attributes.attribute_sep)


@step(name="compose-cold")
def compose_cold(vectors, attributes, blend: int):
    """Every key of the attributes table without history gets input and context vectors
    composed from its attributes (count 0, flagged cold); keys seen a few times take part
    of theirs from their attributes (`blend`: attribute_blend). Returns (vectors, record)."""
    from catvec.base.attributes import compose_vectors

    return compose_vectors(vectors, attributes, blend=blend)


@step(name="evaluate")
def evaluate_holdout(vectors, rules: SequenceRules, query_last: int, events_table) -> dict:
    """With a holdout (rules.holdout): HR@10 / NDCG@10 of every scorer and of popularity on
    the held-out items; the query is the mean of the last `query_last` items (a basket: all)."""
    from catvec.pretraining.evaluation import build_tasks, score_tasks

    tasks, counts, _ = build_tasks(events_table, vectors.keys, rules)
    query_last = 0 if events_table.basket else query_last
    quality = {"holdout": rules.holdout, **score_tasks(vectors, tasks, counts, query_last=query_last)}
    for role, m in quality["vectors"].items():
        log.info("%s: HR@10 %.4f NDCG@10 %.4f (popularity %.4f / %.4f)", role, m["hr"], m["ndcg"],
                 quality["popularity"][role]["hr"], quality["popularity"][role]["ndcg"])
    return quality


# ---- composition -----------------------------------------------------------------------

def pretrain(cfg: PretrainConfig, events=None, on_epoch=None, on_trial=None, on_noise_epoch=None) -> PretrainResult:
    """Events -> a new complete version in cfg.out, then `latest` moved to it.

    `events` may be a pandas / polars DataFrame instead of cfg.events.
    on_epoch(epoch, n_epochs, info) reports training progress, on_trial(trial) tuning,
    on_noise_epoch(epoch, n_epochs, info) the seed-noise trainings of a run with a parent.
    Example: pretrain(PretrainConfig(events="data/events.csv", out="artifacts"))
    """
    cfg.validate()
    check_writable(cfg.out)
    t0 = time.perf_counter()
    timings = {}
    # the groups tuning never changes, cut once; the training's are cut after tuning
    options, rules, extraction = EventOptions.of(cfg), SequenceRules.of(cfg), Extraction.of(cfg)
    watch, checksum = open_input(options, events)
    attributes = load_attributes(AttributeOptions.of(cfg), cfg.item_col) if cfg.item_attributes else None
    store = VersionStore(cfg.out)
    store.prepare()
    sweep_leftovers(store.root, CACHE_DIR)
    parent = store.latest_name()
    parent_vectors, parent_manifest = load_parent(store, parent, Lineage.of(cfg), cfg.gate, cfg.dim) if parent \
        else (None, None)
    with store.staged() as (name, staging):
        table = None
        with timed(timings, "extract_seconds"):  # a cache hit: the lookup; else replaced by the extraction's
            corpus = find_cached_corpus(cfg.out, options, rules, checksum) if events is None and not cfg.refresh else None
        timings["corpus_cached"] = corpus is not None
        if corpus is None:
            with timed(timings, "read_seconds"):
                table = run_events(options, rules, extraction, events, staging)
            with timed(timings, "extract_seconds"):
                corpus = extract_corpus(table, cfg.out, options, rules, extraction, checksum, watch, cfg.refresh)
        with timed(timings, "tune_seconds"):
            open_ = open_settings(SkipGram.of(cfg), Scoring.of(cfg))
            chosen, tuning = (None, {})
            if parent_manifest is not None and not cfg.retune and open_:  # with or without --no-tune
                chosen, tuning = inherit_settings(open_, parent, parent_manifest)
            if chosen is not None:
                cfg = apply_settings(cfg, chosen, str(Path(cfg.out) / parent / MANIFEST))  # checked like flags
            else:
                if cfg.tune and open_ and table is None:
                    table = check_read(run_events(options, rules, extraction, events, staging), checksum, watch,
                                       "tuning")
                chosen, tuning = choose_settings(table, corpus, SkipGram.of(cfg), Scoring.of(cfg), Tuning.of(cfg),
                                                 rules, options.basket, on_trial)
                cfg = dataclasses.replace(cfg, **chosen)
        init = parent_vectors if cfg.warm_start else None
        if cfg.warm_start and init is None:
            log.warning("--warm-start: %s has no version yet; this one starts cold", cfg.out)
        with timed(timings, "train_seconds"):
            vectors, train_stats = train_skipgram(corpus, SkipGram.of(cfg), Scoring.of(cfg), rules.min_count, on_epoch,
                                                  init)
            vectors.supports = tuning.get("supports") or {}
        warnings = enforce_gates(corpus.stats, train_stats, len(vectors), cfg.strict)
        cold_start = None
        if attributes is not None:
            vectors, cold_start = compose_cold(vectors, attributes, cfg.attribute_blend)
        lineage = {}
        if parent_vectors is not None:
            with timed(timings, "compare_seconds"):  # the seed noise included
                noise = {}
                if cfg.gate:
                    with timed(timings, "noise_seconds"):
                        noise = measure_seed_noise(store, parent, parent_vectors, parent_manifest, corpus, vectors,
                                                   SkipGram.of(cfg), rules.min_count, cfg.align_min_count,
                                                   cfg.noise_sample, on_noise_epoch)
                vectors, lineage = compare_parent(vectors, parent_vectors, noise, Lineage.of(cfg), cfg.gate)
        quality = parent_quality = None
        if cfg.holdout != "none":
            with timed(timings, "evaluate_seconds"):
                if table is None:
                    table = check_read(run_events(options, rules, extraction, events, staging), checksum, watch,
                                       "evaluation")
                quality = evaluate_holdout(vectors, rules, cfg.query_last, table)
                if parent_vectors is not None and cfg.gate:
                    parent_quality = evaluate_holdout(parent_vectors, rules, cfg.query_last, table)
                    lineage["parent_quality"] = parent_quality
        elif parent_vectors is not None and cfg.gate:  # a default run: a sample of the corpus's sequences
            with timed(timings, "validate_seconds"):
                lineage["validation"] = validate_against_parent(vectors, parent_vectors, corpus, Tuning.of(cfg),
                                                                Scoring.of(cfg), cfg.seed, bool(cfg.basket_col))
        gate = None
        if parent_vectors is not None and cfg.gate:
            from catvec.pretraining.lifecycle import gate_decision

            checked = lineage.get("validation") or {}
            gate = gate_decision(lineage.get("drift"), quality or checked.get("vectors"),
                                 parent_quality or checked.get("parent"), Gate.of(cfg), cfg.align_min_count)
            lineage["gate"] = gate
        if is_split(table):
            table.close()  # before anything is written into staging
        with timed(timings, "export_seconds"):
            manifest = build_manifest(cfg, checksum, corpus, train_stats, timings, parent, name)
            manifest.update(lineage)
            if init is not None:
                manifest["warm_start"] = {"from": parent, "keys": train_stats.get("warm_keys", 0)}
            manifest["tuning"] = tuning
            manifest["scoring"] = {"scorer": vectors.scorer, "min_support": vectors.min_support,
                                   "supports": vectors.supports}
            if cold_start is not None:
                manifest["cold_start"] = cold_start
            if quality is not None:
                manifest["quality"] = quality
            if warnings:
                manifest["warnings"] = warnings
            if events is not None:
                manifest["input"]["path"] = "<DataFrame>"
            export_version(vectors, manifest, staging, Output.of(cfg), AttributeOptions.of(cfg), cfg.item_col, corpus,
                           cfg.holdout)
        promoted = gate is None or gate["promoted"]
        held = {}

        def hold(reason: str) -> bool:  # under the lock: latest is no longer this run's parent
            held["reason"] = reason
            hold_as_candidate(staging, reason)
            return False

        final = publish_version(store, name, staging, cfg.keep, promote=promoted, how=publish_reason(parent, gate),
                                parent=parent if cfg.gate else ANY_PARENT, on_parent_moved=hold)
        if held:
            promoted = False
            gate = dict(gate or {"promoted": False, "forced": False, "reasons": [], "checks": {}},
                        promoted=False, held=held["reason"])
    log.info("pretrain: version %s in %.1fs%s", name, time.perf_counter() - t0,
             "" if promoted else " (a candidate: the gate kept latest where it was)")
    return PretrainResult(version=name, path=final, manifest=read_manifest(final), promoted=promoted, gate=gate)


def run_events(options: EventOptions, rules: SequenceRules, extraction: Extraction, events, staging: Path):
    """The run's events: the whole table when they fit one shard, else the input split into
    shard files in staging (catvec.pretraining.split; removed with staging on failure)."""
    if wants_shards(options, extraction, events):
        return open_split(options, rules, extraction, staging / SPLIT_DIR)
    return read_events_table(options, events)


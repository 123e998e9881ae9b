"""The pretrain pipeline: `pretrain(cfg)` and the steps it calls, top to bottom.

    pretrain(cfg, events=None)
        checksum_events -> load_parent (when OUT has a latest) -> find_cached_corpus?
        -> read_events_table -> extract_corpus (sharded when large: catvec.pretraining.shards)
        -> inherit_settings (with a parent) | choose_settings (fills what was left open;
           catvec.pretraining.autotune)
        -> train_skipgram (warm start: from the parent)
        -> compose_cold (with item attributes, read by load_attributes before any work:
           vectors for keys with no history; catvec.base.attributes)
        -> measure_seed_noise (the parent's, once) -> compare_parent (align, drift vs that noise)
        -> evaluate_holdout (with a holdout; the parent's too) | validate_against_parent (without)
        -> gate (catvec.pretraining.lifecycle) -> export_version (staging)
        -> publish_version (OUT/<version>; OUT/latest if promoted and latest is still the parent)

Each step is a plain function marked with `@step` (catvec.base.steps); the CLI calls
`pretrain` directly and the Prefect flow calls it with every step running as a task
(flows/adapter.py), so both run this code. Steps marked io=True read input that may
arrive late; they are the only ones a flow retries.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import platform
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from catvec.base.config import apply_settings, export_formats

from catvec.pretraining.config import HOLDOUT_MODES, PretrainConfig
from catvec.base.errors import CatvecError
from catvec.base.steps import step
from catvec.base.store import (ANY_PARENT, VersionStore, check_writable, finish_manifest, publish_version,
                               read_manifest, write_checked_json, write_json)
from catvec.pretraining.events import read_events_table
from catvec.pretraining.gates import enforce_gates
from catvec.pretraining.inputs import check_read, check_unchanged, sweep_leftovers, watch_input
from catvec.pretraining.autotune import open_settings
from catvec.pretraining.shards import wants_shards
from catvec.pretraining.split import SPLIT_DIR, is_split, open_split

log = logging.getLogger(__name__)

CACHE_DIR = ".cache"
CACHE_KEEP = 3
EXTRACT_FIELDS = ("user_col", "item_col", "time_col", "session_col", "basket_col", "sep", "time_unit",
                  "time_format", "drop_nulls", "session_gap", "collapse_repeats", "min_count", "min_sequence_length",
                  "max_sequence_length", "holdout", "since", "until", "basket_holdout_share")


@dataclass
class PretrainResult:
    version: str
    path: Path            # OUT/<version>
    manifest: dict
    promoted: bool = True  # False: kept as a candidate, the promotion gate did not move `latest`
    gate: dict | None = None  # the gate's decision: {"promoted", "reasons": [...], ...}; None without a parent


# ---- steps ---------------------------------------------------------------------------

@step(name="checksum-events", io=True)
def checksum_events(cfg: PretrainConfig, events=None) -> str:
    """sha256 of the events file (or of a DataFrame's rows)."""
    from catvec.base.tables import read_frame, source_checksum

    if events is not None:
        return read_frame(events)[2]
    path = cfg.events_path
    try:
        return source_checksum(path)  # a file, folder, glob, list or URL; a clear message when missing
    except OSError as exc:
        raise CatvecError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def corpus_cache_key(cfg: PretrainConfig, checksum: str) -> str:
    params = {name: getattr(cfg, name) for name in EXTRACT_FIELDS}
    blob = json.dumps({"input": checksum, "params": params, "format": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@step(name="cached-corpus")
def find_cached_corpus(cfg: PretrainConfig, checksum: str):
    """The cached corpus for this input + extraction parameters, or None."""
    from catvec.pretraining.corpus import Corpus

    if cfg.refresh:
        return None
    entry = Path(cfg.out) / CACHE_DIR / ("corpus-" + corpus_cache_key(cfg, checksum))
    meta = entry / "corpus.json"
    if not meta.is_file() or not (entry / "corpus.txt").is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        corpus = Corpus(path=entry / "corpus.txt", keys=data["keys"], stats=data["stats"], basket=data["basket"])
        if cfg.holdout != "none":
            from catvec.pretraining.evaluation import HOLDOUT_FILE, load_heldout

            corpus.heldout = load_heldout(entry / HOLDOUT_FILE)[1]
    except (OSError, ValueError, KeyError, CatvecError):
        return None
    os.utime(entry)  # recently used: kept by the pruning below
    log.info("corpus cache hit: %s", entry.name)
    return corpus


@step(name="extract-corpus")
def extract_corpus(events_table, cfg: PretrainConfig, checksum: str, watch=None):
    """Events -> corpus file in OUT/.cache (atomic: a temp dir renamed into place). Without
    an events table, cfg's input is extracted in shards on cfg.engine (catvec.pretraining.shards).
    `watch` (catvec.pretraining.inputs): the corpus enters the cache under `checksum` only if
    the input is still the one that checksum was taken of."""
    from catvec.pretraining.corpus import build_corpus, extraction_options
    from catvec.pretraining.shards import extract_sharded

    cache_root = Path(cfg.out) / CACHE_DIR
    entry = cache_root / ("corpus-" + corpus_cache_key(cfg, checksum))
    tmp = cache_root / f".tmp-{entry.name}-{os.getpid()}-{secrets.token_hex(3)}"  # private to this call
    try:
        tmp.mkdir(parents=True)
        split = events_table is None or is_split(events_table)
        corpus = extract_sharded(cfg, tmp / "corpus.txt", split=events_table) if split else build_corpus(
            events_table, tmp / "corpus.txt",
            **extraction_options(cfg), min_count=cfg.min_count, min_sequence_length=cfg.min_sequence_length,
            max_sequence_length=cfg.max_sequence_length, holdout=HOLDOUT_MODES[cfg.holdout],
            source=events_table.source)
        write_json(tmp / "corpus.json", {"keys": corpus.keys, "stats": corpus.stats, "basket": corpus.basket})
        if corpus.heldout is not None:
            from catvec.pretraining.evaluation import HOLDOUT_FILE, save_heldout

            save_heldout(corpus.heldout, tmp / HOLDOUT_FILE, cfg.holdout)
        check_read(events_table, checksum, watch, "extraction")
        _move_into_cache(tmp, entry, replace=cfg.refresh)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    corpus.path = entry / "corpus.txt"
    _prune_cache(cache_root)
    return corpus


@step(name="choose-settings")
def choose_settings(cfg: PretrainConfig, events_table, corpus, on_trial=None) -> tuple[PretrainConfig, dict]:
    """Fill the settings left open (window, epochs, ns_exponent, sample, scorer, min_support),
    tuned on a validation split of a sample when there is enough data."""
    from catvec.pretraining import autotune

    return autotune.choose_settings(cfg, events_table, corpus.stats["tokens"], on_trial=on_trial)


@step(name="inherit-settings")
def inherit_settings(cfg: PretrainConfig, parent: str, parent_manifest: dict) -> tuple[PretrainConfig, dict]:
    """A version with a parent keeps the parent's chosen settings (window, epochs, ns_exponent,
    sample, scorer, min_support) where this run left them open: the same settings keep
    versions comparable (tuned afresh each night they can differ enough to move every
    neighbour list), and the nightly run skips the tuning trainings."""
    params = parent_manifest.get("params") or {}
    open_ = open_settings(cfg)
    missing = [n for n in open_ if params.get(n) is None or params.get(n) == ""]
    if missing:  # a parent without them (an older format): tune as usual
        return None, {}
    chosen = {n: params[n] for n in open_}
    cfg = apply_settings(cfg, chosen, str(Path(cfg.out) / parent / "manifest.json"))  # checked like flags
    supports = dict((parent_manifest.get("scoring") or {}).get("supports") or {})
    record = {"ran": False, "reason": f"kept the settings of the parent {parent} (--retune chooses them again)",
              "inherited_from": parent, "settings": open_, "chosen": chosen, "supports": supports}
    log.info("settings kept from the parent %s: %s", parent, ", ".join(f"{n}={v}" for n, v in chosen.items()))
    return cfg, record


@step(name="load-parent")
def load_parent(store: VersionStore, parent: str | None, cfg: PretrainConfig):
    """The parent version (OUT/latest when the run starts) when alignment, the gate or a warm
    start need it: (vectors, manifest), checksums verified; (None, None) without one."""
    from catvec.base.vectors import load_vectors

    if parent is None or not (cfg.align or cfg.gate or cfg.warm_start):
        return None, None
    directory = store.root / parent
    try:
        vectors = load_vectors(directory)  # checks the manifest and every checksum
        manifest = read_manifest(directory, verify=False)
    except CatvecError as exc:
        raise CatvecError(f"parent version {parent} (OUT/latest) cannot be used: {exc}; promote a sound version "
                          f"with `catvec promote {store.root} VERSION`, or pass --no-align --no-gate") from None
    if cfg.warm_start and vectors.dim != cfg.dim:
        raise CatvecError(f"--warm-start: the parent {parent} has dim {vectors.dim}, this run dim {cfg.dim}; "
                          f"pass --dim {vectors.dim} or leave out --warm-start")
    return vectors, manifest


@step(name="train")
def train_skipgram(corpus, cfg: PretrainConfig, on_epoch=None, init=None):
    """Corpus -> (Vectors, training stats); the vectors carry the config's scorer and support.
    `init` (a warm start): known keys start from its input and context vectors."""
    from catvec.pretraining.skipgram import train_vectors

    vectors, stats = train_vectors(corpus, cfg, on_epoch=on_epoch, init=init)
    vectors.scorer, vectors.min_support = cfg.scorer or "cosine", cfg.min_support or 1
    return vectors, stats


@step(name="load-attributes", io=True)
def load_attributes(cfg: PretrainConfig):
    """The item attributes table (catvec.base.attributes), read and checked before any work."""
    from catvec.base.attributes import read_attributes

    return read_attributes(cfg.item_attributes, cfg.item_col, cfg.attribute_cols, cfg.attribute_sep)


@step(name="compose-cold")
def compose_cold(vectors, attributes, cfg: PretrainConfig):
    """Every key of the attributes table without history gets input and context vectors
    composed from its attributes (count 0, flagged cold); keys seen a few times take part
    of theirs from their attributes (attribute_blend). Returns (vectors, record)."""
    from catvec.base.attributes import compose_vectors

    return compose_vectors(vectors, attributes, blend=cfg.attribute_blend)


@step(name="compare-parent")
def compare_parent(vectors, parent_vectors, parent_noise: dict, cfg: PretrainConfig):
    """Align to the parent and measure the drift beside the parent's seed-noise baseline.
    Returns (vectors, record) where record holds alignment and drift."""
    from catvec.pretraining import lifecycle

    record = {}
    if cfg.align:
        vectors, record["alignment"] = lifecycle.align(vectors, parent_vectors, cfg.align_min_count)
    if cfg.gate:
        skipped = None if not cfg.align or record["alignment"]["applied"] else record["alignment"]["reason"]
        record["drift"] = lifecycle.drift_report(vectors, parent_vectors, cfg.align_min_count, parent_noise, skipped)
        record["drift"]["noise_from"] = parent_noise.get("from", "parent")
    return vectors, record


@step(name="seed-noise")
def measure_seed_noise(store: VersionStore, parent: str, parent_vectors, parent_manifest: dict, corpus, vectors,
                       cfg: PretrainConfig, on_epoch=None) -> dict:
    """The parent's seed-noise baseline: two seeds of its training on its data. Measured once,
    by the first run that needs it, and kept in OUT/<parent>/noise.json for every later child
    (a rerun after a refusal pays nothing). The parent's corpus comes from the corpus cache or
    is extracted again from its input when that is unchanged; when neither is possible the
    baseline is measured on this run's data instead, and says so. Measured on a sample of
    cfg.noise_sample of the sequences (lifecycle.seed_noise); on_epoch reports its epochs."""
    from catvec.pretraining import lifecycle

    path = store.root / parent / lifecycle.NOISE_FILE
    stored = lifecycle.read_noise(path, cfg.align_min_count, cfg.noise_sample)
    if stored is not None:
        return stored
    found = parent_corpus(store, parent_manifest, cfg)
    if found is None:
        log.warning("the parent's corpus is gone (cache pruned, input changed): seed noise measured on this run's data")
        noise = lifecycle.seed_noise(corpus, cfg, vectors, cfg.noise_sample, on_epoch)
        return {**noise, "from": "this version (the parent's data is no longer available)"}
    parent_cfg, parent_data = found
    noise = lifecycle.seed_noise(parent_data, parent_cfg, parent_vectors, cfg.noise_sample, on_epoch)
    noise = {**noise, "from": "parent"}
    try:
        write_checked_json(path, noise)
    except OSError as exc:  # a read-only parent: measured again next time, no harm
        log.warning("could not store the seed-noise baseline in %s (%s)", path, exc)
    return noise


def parent_corpus(store: VersionStore, parent_manifest: dict, cfg: PretrainConfig):
    """(config, Corpus) the parent was trained on: from OUT/.cache, or extracted again from
    its input if that still has the recorded checksum; None when neither works."""
    known = {f.name for f in dataclasses.fields(PretrainConfig)}
    unused = ("out", "refresh", "align_min_count", "item_attributes", "attribute_col")  # not the corpus's business
    params = {k: v for k, v in (parent_manifest.get("params") or {}).items() if k in known and k not in unused}
    source = (parent_manifest.get("input") or {})
    if not params or source.get("path") in (None, "", "<DataFrame>"):
        return None
    where = str(store.root / (parent_manifest.get("version") or "latest") / "manifest.json")
    parent_cfg = apply_settings(PretrainConfig(out=str(store.root), align_min_count=cfg.align_min_count), params, where,
                                f"promote a sound version (catvec promote {store.root} VERSION) or pass --no-gate")
    try:
        found = find_cached_corpus(parent_cfg, source["checksum"])
        if found is None:
            watch = watch_input(parent_cfg)
            if checksum_events(parent_cfg) != source["checksum"]:
                return None
            table = None if wants_shards(parent_cfg, None) else read_events_table(parent_cfg)
            found = extract_corpus(table, parent_cfg, source["checksum"], watch)
    except (CatvecError, OSError, TypeError, KeyError) as exc:
        log.info("the parent's corpus cannot be rebuilt: %s", exc)
        return None
    return parent_cfg, found


@step(name="evaluate")
def evaluate_holdout(vectors, cfg: PretrainConfig, events_table) -> dict:
    """With a holdout: HR@10 / NDCG@10 of every scorer and of popularity on the held-out items."""
    from catvec.pretraining.corpus import extraction_options
    from catvec.pretraining.evaluation import build_tasks, score_tasks

    tasks, counts, _ = build_tasks(events_table, vectors.keys, HOLDOUT_MODES[cfg.holdout], **extraction_options(cfg))
    query_last = 0 if cfg.basket_col else cfg.query_last
    quality = {"holdout": cfg.holdout, **score_tasks(vectors, tasks, counts, query_last=query_last)}
    for role, m in quality["vectors"].items():
        log.info("%s: HR@10 %.4f NDCG@10 %.4f (popularity %.4f / %.4f)", role, m["hr"], m["ndcg"],
                 quality["popularity"][role]["hr"], quality["popularity"][role]["ndcg"])
    return quality


@step(name="validate-against-parent")
def validate_against_parent(vectors, parent_vectors, cfg: PretrainConfig, corpus) -> dict:
    """Without a holdout: HR@10 of this version and of its parent on the same sequences, the
    last items of a sample of the corpus (catvec.pretraining.lifecycle.paired_validation)."""
    from catvec.pretraining.lifecycle import paired_validation

    return paired_validation(vectors, parent_vectors, cfg, corpus)


def build_manifest(cfg: PretrainConfig, checksum: str, corpus, train_stats: dict, timings: dict,
                   parent: str | None, version: str) -> dict:
    import gensim
    import numpy
    import polars

    import catvec

    return {
        "kind": "pretrain",
        "version": version,
        "parent": parent,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "libraries": {"catvec": catvec.__version__, "gensim": gensim.__version__, "numpy": numpy.__version__,
                      "polars": polars.__version__, "python": platform.python_version()},
        "params": dataclasses.asdict(cfg),
        "input": {"path": str(cfg.events_path), "checksum": checksum},
        "corpus": corpus.stats,
        "training": train_stats,
        "timings": timings,
    }


@step(name="export")
def export_version(vectors, manifest: dict, staging: Path, cfg: PretrainConfig, corpus=None) -> Path:
    """Write the weight files, the held-out items, the map, report.md and any interop
    exports into the staging directory; all but the exports are checksummed."""
    from catvec.reports.render import write_report
    from catvec.base.vectors import export_projector, export_word2vec, save_vectors

    extra = []
    if corpus is not None and corpus.heldout is not None:
        from catvec.pretraining.evaluation import HOLDOUT_FILE, save_heldout

        save_heldout(corpus.heldout, staging / HOLDOUT_FILE, cfg.holdout)
        extra.append(HOLDOUT_FILE)
    draw_map = cfg.draws_map and len(vectors) >= 3  # PCA of fewer points says nothing
    if cfg.draws_map and not draw_map:
        log.info("vector map skipped: only %d vectors", len(vectors))
    if draw_map:
        from catvec.reports.plots import MAP_FILE, plot_vector_map, read_item_attributes

        attributes = read_item_attributes(cfg.item_attributes, cfg.item_col, cfg.attribute_col) if cfg.item_attributes else None
        plot_vector_map(vectors, staging / MAP_FILE, attributes=attributes, title=f"catvec {manifest.get('version', '')}")
        extra.append(MAP_FILE)
    images = [MAP_FILE] if draw_map else []
    # a child version pays a training for its drift baseline already: its plot is drawn unless
    # pictures were turned off (--no-vector-map)
    if (manifest.get("drift") or {}).get("bands") and cfg.vector_map is not False:
        from catvec.reports.plots import plot_drift
        from catvec.reports.render import DRIFT_FILE

        plot_drift(manifest["drift"], staging / DRIFT_FILE)
        extra.append(DRIFT_FILE)
        images.append(DRIFT_FILE)
    extra.append(write_report(staging, manifest, images=images).name)
    files = []
    for fmt in export_formats(cfg.export):
        if fmt == "word2vec":
            export_word2vec(vectors, staging / "vectors.w2v.txt")
            files.append("vectors.w2v.txt")
        elif fmt == "projector":
            export_projector(vectors, staging)
            files += ["vectors.tsv", "metadata.tsv"]
    manifest = dict(manifest, exports=files)
    save_vectors(vectors, staging, manifest, extra_files=extra)
    return staging


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
    watch = watch_input(cfg, events)
    checksum = checksum_events(cfg, events)
    check_unchanged(watch, "while its checksum was taken")
    attributes = load_attributes(cfg) if cfg.item_attributes else None
    store = VersionStore(cfg.out)
    store.prepare()
    sweep_leftovers(store.root, CACHE_DIR)
    parent = store.latest_name()
    parent_vectors, parent_manifest = load_parent(store, parent, cfg) if parent else (None, None)
    with store.staged() as (name, staging):
        t = time.perf_counter()
        table = None
        corpus = find_cached_corpus(cfg, checksum) if events is None else None
        timings["corpus_cached"] = corpus is not None
        if corpus is None:
            table = run_events(cfg, events, staging)
            timings["read_seconds"] = round(time.perf_counter() - t, 4)
            t = time.perf_counter()
            corpus = extract_corpus(table, cfg, checksum, watch)
        timings["extract_seconds"] = round(time.perf_counter() - t, 4)
        t = time.perf_counter()
        inherited, tuning = (None, {})
        if parent_manifest is not None and not cfg.retune and open_settings(cfg):  # with or without --no-tune
            inherited, tuning = inherit_settings(cfg, parent, parent_manifest)
        if inherited is not None:
            cfg = inherited
        else:
            if autotune_needs_events(cfg) and table is None:
                table = check_read(run_events(cfg, events, staging), checksum, watch, "tuning")
            cfg, tuning = choose_settings(cfg, table, corpus, on_trial)
        timings["tune_seconds"] = round(time.perf_counter() - t, 4)
        t = time.perf_counter()
        init = parent_vectors if cfg.warm_start else None
        if cfg.warm_start and init is None:
            log.warning("--warm-start: %s has no version yet; this one starts cold", cfg.out)
        vectors, train_stats = train_skipgram(corpus, cfg, on_epoch, init)
        vectors.supports = tuning.get("supports") or {}
        timings["train_seconds"] = round(time.perf_counter() - t, 4)
        warnings = enforce_gates(corpus.stats, train_stats, len(vectors), cfg.strict)
        cold_start = None
        if attributes is not None:
            vectors, cold_start = compose_cold(vectors, attributes, cfg)
        lineage = {}
        if parent_vectors is not None:
            t = time.perf_counter()
            noise = {}
            if cfg.gate:
                noise = measure_seed_noise(store, parent, parent_vectors, parent_manifest, corpus, vectors, cfg,
                                           on_noise_epoch)
                timings["noise_seconds"] = round(time.perf_counter() - t, 4)
            vectors, lineage = compare_parent(vectors, parent_vectors, noise, cfg)
            timings["compare_seconds"] = round(time.perf_counter() - t, 4)
        quality = parent_quality = None
        if cfg.holdout != "none":
            t = time.perf_counter()
            if table is None:
                table = check_read(run_events(cfg, events, staging), checksum, watch, "evaluation")
            quality = evaluate_holdout(vectors, cfg, table)
            if parent_vectors is not None and cfg.gate:
                parent_quality = evaluate_holdout(parent_vectors, cfg, table)
                lineage["parent_quality"] = parent_quality
            timings["evaluate_seconds"] = round(time.perf_counter() - t, 4)
        elif parent_vectors is not None and cfg.gate:  # a default run: a sample of the corpus's sequences
            t = time.perf_counter()
            lineage["validation"] = validate_against_parent(vectors, parent_vectors, cfg, corpus)
            timings["validate_seconds"] = round(time.perf_counter() - t, 4)
        gate = None
        if parent_vectors is not None and cfg.gate:
            from catvec.pretraining.lifecycle import gate_decision

            checked = lineage.get("validation") or {}
            gate = gate_decision(lineage.get("drift"), quality or checked.get("vectors"),
                                 parent_quality or checked.get("parent"), cfg)
            lineage["gate"] = gate
        if is_split(table):
            table.close()  # before anything is written into staging
        t = time.perf_counter()
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
        export_version(vectors, manifest, staging, cfg, corpus)
        timings["export_seconds"] = round(time.perf_counter() - t, 4)
        promoted = gate is None or gate["promoted"]
        held = {}

        def hold(reason: str) -> bool:  # under the lock: latest is no longer this run's parent
            held["reason"] = reason
            hold_as_candidate(staging, reason)
            return False

        final = publish_version(store, name, staging, cfg.keep, promote=promoted, how=_publish_reason(parent, gate),
                                parent=parent if cfg.gate else ANY_PARENT, on_parent_moved=hold)
        if held:
            promoted = False
            gate = dict(gate or {"promoted": False, "forced": False, "reasons": [], "checks": {}},
                        promoted=False, held=held["reason"])
    log.info("pretrain: version %s in %.1fs%s", name, time.perf_counter() - t0,
             "" if promoted else " (a candidate: the gate kept latest where it was)")
    return PretrainResult(version=name, path=final, manifest=read_manifest(final), promoted=promoted, gate=gate)


def hold_as_candidate(staging: Path, reason: str) -> None:
    """Record in a staged version that it stays a candidate (`reason`): the gate block of its
    manifest and report.md are rewritten, and the manifest finished again."""
    from catvec.reports.render import DRIFT_FILE, write_report
    from catvec.reports.plots import MAP_FILE

    manifest = read_manifest(staging, verify=False)
    files = list(manifest.pop("files"))
    gate = manifest.get("gate") or {"promoted": False, "forced": False, "reasons": [], "checks": {}}
    manifest["gate"] = dict(gate, promoted=False, held=reason)
    write_report(staging, manifest, images=[f for f in (MAP_FILE, DRIFT_FILE) if f in files])
    finish_manifest(staging, manifest, files)


def _publish_reason(parent: str | None, gate: dict | None) -> str:
    if parent is None:
        return "first"
    if gate is None:
        return "ungated"
    return "forced" if gate["forced"] else "gate"


def run_events(cfg: PretrainConfig, events, staging: Path):
    """The run's events: the whole table when they fit one shard, else the input split into
    shard files in staging (catvec.pretraining.split; removed with staging on failure)."""
    if wants_shards(cfg, events):
        return open_split(cfg, staging / SPLIT_DIR)
    return read_events_table(cfg, events)


def autotune_needs_events(cfg: PretrainConfig) -> bool:
    return cfg.tune and bool(open_settings(cfg))


def _move_into_cache(tmp: Path, entry: Path, replace: bool) -> None:
    """Rename a finished extraction into place. A readable entry already there comes from an
    overlapping run of the same input and parameters (same content), which may be training
    from it: keep it, unless a refresh asks for a new one. One to replace (unreadable, or a
    refresh) is moved aside first, so its name never points at a half-deleted directory."""
    try:
        os.rename(tmp, entry)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if not replace and _readable_entry(entry):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    aside = entry.with_name(f".old-{tmp.name}")
    os.rename(entry, aside)
    os.rename(tmp, entry)
    shutil.rmtree(aside, ignore_errors=True)


def _readable_entry(entry: Path) -> bool:
    try:
        json.loads((entry / "corpus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (entry / "corpus.txt").is_file()


def _prune_cache(cache_root: Path) -> None:
    entries = sorted((p for p in cache_root.glob("corpus-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in entries[:-CACHE_KEEP]:
        shutil.rmtree(old, ignore_errors=True)

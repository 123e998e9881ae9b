"""The finetune pipeline: `finetune(cfg)` and the steps it calls, top to bottom.

    finetune(cfg, table=None)
        [load_previous_model: cfg.warm_start, its settings and roles into cfg]
        load_table, load_pretrained (io: a flow retries them while an input is missing)
        -> assign_roles [-> check_fits: the previous model fits these roles and vectors]
        -> build_vocabs -> align_columns -> prepare_data
        -> train_model (cfg.mode, or each --auto candidate, keeping the best on validation;
                        with cfg.compare also "scratch", on the same split; with a warm
                        start the model starts from the previous one, see warm_start.py;
                        epochs 0 scores it without training)
        -> fit_baselines (cfg.compare: linear probe and kNN on the frozen vectors)
        -> export_model (a complete model dir in staging) -> publish_version (OUT/latest)

The steps share one `FinetuneRun`: the config plus what each step produced, filled in
as the pipeline goes. Each step is a plain function marked with `@step`
(catvec.base.steps); the CLI calls `finetune` directly and the Prefect flow runs the
same call with every step as a task (flows/adapter.py).

Nothing is written to OUT/<version> or OUT/latest until every file is complete; a failed
or killed run leaves earlier versions and `latest` untouched. Per-epoch checkpoints live
in OUT/.checkpoints/<key of inputs + config>/ so `resume=True` finds them after a crash.
Prediction with a model dir is catvec.finetuning.predict.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catvec.finetuning.config import FinetuneConfig
from catvec.base.errors import CatvecError
from catvec.base.steps import step
from catvec.base.store import VersionStore, check_writable, describe_os_error, publish_version

log = logging.getLogger(__name__)

CHECKPOINTS = ".checkpoints"
NOT_IN_KEY = ("out", "resume", "keep", "compare", "min_coverage")


@dataclass
class LabeledTable:
    frame: object          # polars.DataFrame
    name: str
    checksum: str


@dataclass
class Aligned:
    matrix: np.ndarray     # (len(vocab), dim) float32
    mask: np.ndarray       # (len(vocab),) bool: rows with a pretrained vector
    report: object         # AlignmentReport


@dataclass
class Prepared:
    data: object           # catvec.finetuning.training.TrainData
    scaler: object         # catvec.finetuning.labeled.Scaler (continuous features, training rows only)
    is_val: np.ndarray     # (n_rows,) bool
    key_stats: object = None   # catvec.finetuning.keystats.KeyStats (binary / regression), or None


@dataclass
class FinetuneRun:
    """What the finetune steps share: the config and each step's result, in pipeline order."""

    cfg: FinetuneConfig
    labeled: LabeledTable | None = None
    vectors: dict = field(default_factory=dict)      # weight dir -> Vectors
    roles: object = None                             # catvec.finetuning.labeled.Roles
    vocabs: dict = field(default_factory=dict)       # column -> Vocab
    aligned: dict = field(default_factory=dict)      # pretrained column -> Aligned
    prepared: Prepared | None = None
    fits: dict = field(default_factory=dict)         # mode -> FitResult
    baselines: list = field(default_factory=list)    # catvec.finetuning.baselines.BaselineResult
    auto: dict | None = None                         # --auto: candidates and the choice (metrics.json)
    warm: object = None                              # catvec.finetuning.warm_start.WarmStart
    warm_record: dict | None = None                  # what the warm start copied (manifest, metrics.json)
    notes: list = field(default_factory=list)        # one line each: what --compare could not run, and why
    blend: object = None                             # catvec.finetuning.ensemble.Blend (--blend), or None
    members: list = field(default_factory=list)      # --blend: the best --auto candidates (ensemble.keep_member)


@dataclass
class FinetuneResult:
    version: str
    path: Path             # OUT/<version>
    metrics: dict          # the content of metrics.json
    alignment: dict        # {column: AlignmentReport as JSON}


# ---- steps ---------------------------------------------------------------------------

@step(name="load-table", io=True)
def load_table(cfg: FinetuneConfig, table=None) -> LabeledTable:
    """Read the labeled table (cfg.table, or a pandas / polars DataFrame)."""
    from catvec.finetuning.labeled import read_table

    if table is None and not cfg.table:
        raise CatvecError("no labeled table given; pass --table PATH (CSV, TSV or Parquet)")
    frame, name, checksum = read_table(table if table is not None else cfg.table)
    return LabeledTable(frame, name, checksum)


@step(name="load-vectors", io=True)
def load_pretrained(cfg: FinetuneConfig) -> dict:
    """Load every weight dir the config names. Scratch mode without --compare needs none."""
    from catvec.base.vectors import load_vectors
    from catvec.finetuning.align import pretrained_input

    if cfg.mode == "scratch" and not cfg.compare:
        return {}
    dirs = dict.fromkeys([*cfg.pretrained_map.values()] or [cfg.vectors])
    loaded = {d: load_vectors(d) for d in dirs}
    if cfg.item_attributes:
        from catvec.finetuning.align import with_attributes

        loaded = {d: with_attributes(v, d, cfg.item_attributes, cfg.attribute_cols, cfg.attribute_sep)
                  for d, v in loaded.items()}
    return {d: pretrained_input(v, cfg.pretrained_input, d) for d, v in loaded.items()}


@step(name="load-previous-model", io=True)
def load_previous_model(cfg: FinetuneConfig):
    """--warm-start: the previous model and the settings it was trained with."""
    from catvec.finetuning.warm_start import load_warm_start

    return load_warm_start(cfg.warm_start)


@step(name="resolve-roles")
def assign_roles(run: FinetuneRun):
    """Target, task, categorical / continuous columns and which columns start pretrained."""
    from catvec.finetuning.roles import resolve_roles

    return resolve_roles(run.labeled.frame, run.labeled.name, run.cfg, run.vectors)


@step(name="build-vocabs")
def build_vocabs(run: FinetuneRun) -> dict:
    """One Vocab per categorical column: table values (+ pretrained keys unless labeled_only);
    with hash buckets, the keys of at least min_freq training rows, then the buckets."""
    from catvec.finetuning.labeled import split_rows, test_rows
    from catvec.finetuning.vocab import build_vocab

    cfg, frame = run.cfg, run.labeled.frame
    buckets = cfg.hash_bucket_map
    vocabs = {}
    for col in run.roles.cat_cols:
        n = buckets.get(col, buckets.get("", 0))
        if n:   # own rows only for keys of the training rows: validation and test keys count as unseen
            trained = ~split_rows(frame, cfg.val_fraction, cfg.seed, cfg.split_col, cfg.group_col,
                                  run.labeled.name) & ~test_rows(frame, cfg.split_col)
            vocabs[col] = build_vocab(frame[col].filter(trained), buckets=n, min_freq=cfg.min_freq)
            continue
        source = run.vectors.get(run.roles.pretrained.get(col)) if col in run.roles.pretrained else None
        keys = source.keys if source is not None and not cfg.labeled_only else None
        vocabs[col] = build_vocab(frame[col], keys)
    return vocabs


@step(name="align")
def align_columns(run: FinetuneRun) -> dict:
    """Initial matrices of the pretrained columns, with their AlignmentReports."""
    from catvec.finetuning.align import add_traffic, align, fill_buckets, source_rows

    cfg, frame = run.cfg, run.labeled.frame
    dims = cfg.emb_dim_overrides
    aligned = {}
    for i, (col, vectors_dir) in enumerate(run.roles.pretrained.items()):
        vocab, vectors = run.vocabs[col], run.vectors[vectors_dir]
        counts, name = vocab.counts(frame[col]), f"{run.labeled.name}: column {col!r}"
        # with buckets, coverage is counted once the bucket rows have their pretrained means
        matrix, report = align(vectors, vocab, cfg.oov_init, None if vocab.buckets else counts, dim=dims.get(col),
                               seed=cfg.seed + i, name=name, min_row_coverage=cfg.min_coverage)
        mask = source_rows(vectors, vocab) >= 0                      # (len(vocab),), <unk> False
        if vocab.buckets:
            fill_buckets(matrix, mask, vectors, vocab, report)
            add_traffic(report, counts, mask, name, cfg.min_coverage)
        log.info("%s: %s", col, report.summary())
        aligned[col] = Aligned(matrix, mask, report)
    return aligned


@step(name="prepare")
def prepare_data(run: FinetuneRun) -> Prepared:
    """Split, scale with training statistics only, and encode: arrays ready for `fit`."""
    from catvec.finetuning.keystats import key_stat_columns, key_stats_enabled
    from catvec.finetuning.labeled import Scaler, feature_arrays, split_rows, target_labels, test_rows
    from catvec.finetuning.training import TrainData

    cfg, roles, vocabs = run.cfg, run.roles, run.vocabs
    frame, name = run.labeled.frame, run.labeled.name
    y = target_labels(frame, roles, name)
    is_val = split_rows(frame, cfg.val_fraction, cfg.seed, cfg.split_col, cfg.group_col, name)
    is_test = test_rows(frame, cfg.split_col)
    tr, va = ~is_val & ~is_test, is_val
    x_cat, x_cont = feature_arrays(frame, roles, vocabs, None, name)
    y_mean, y_std = 0.0, 1.0
    if roles.task == "regression":
        y_mean, y_std = (run.warm.model.y_mean, run.warm.model.y_std) if run.warm else \
            (float(y[tr].mean()), float(y[tr].std() or 1.0))
        y = ((y - y_mean) / y_std).astype(np.float32)
    key_stats = None
    if key_stats_enabled(cfg.key_stats, roles.task) and roles.cat_cols:   # appended before scaling
        key_stats, columns = key_stat_columns(x_cat, y, tr, [len(vocabs[c]) for c in roles.cat_cols], roles.task,
                                              cfg.seed)
        x_cont = np.concatenate([x_cont, columns], axis=1)
    # a warm start keeps the previous model's scaling: its weights were trained on those inputs
    scaler = run.warm.model.scaler if run.warm else Scaler.fit(x_cont[tr])
    x_cont = scaler.transform(x_cont)
    n_classes = len(roles.classes or [])
    splits = (tr, va, is_test) if is_test.any() else (tr, va)
    data = TrainData(task=roles.task, x_cat=tuple(x_cat[m] for m in splits),
                     x_cont=tuple(x_cont[m] for m in splits), y=tuple(y[m] for m in splits),
                     y_mean=y_mean, y_std=y_std, n_classes=n_classes)
    return Prepared(data=data, scaler=scaler, is_val=is_val, key_stats=key_stats)


@step(name="train", run_name="train-{mode}")
def train_model(run: FinetuneRun, mode: str, checkpoint_dir=None, on_epoch=None, cfg=None):
    """Build the model for `mode` and fit it. -> catvec.finetuning.training.FitResult.
    cfg: the settings of this fit (an --auto candidate); default run.cfg."""
    import torch

    from catvec.finetuning.device import resolve_device
    from catvec.finetuning.model import TabularEmbeddingModel, embedding_size
    from catvec.finetuning.training import evaluate, fit, fit_full_batch, score_as_is, with_class_weights
    from catvec.finetuning.warm_start import column_dims, warm_start_model

    cfg = cfg or run.cfg
    roles, vocabs, aligned, prepared = run.roles, run.vocabs, run.aligned, run.prepared
    warm = run.warm if mode != "scratch" else None
    torch.manual_seed(cfg.seed)
    dims = {**cfg.emb_dim_overrides, **(column_dims(warm) if warm else {})}
    columns = []
    for col in roles.cat_cols:
        n = len(vocabs[col])
        if col in aligned:
            columns.append({"name": col, "num": n, "dim": int(aligned[col].matrix.shape[1]), "mode": mode})
        else:
            columns.append({"name": col, "num": n, "dim": dims.get(col, embedding_size(n, cfg.emb_size_rule)),
                            "mode": "scratch"})
    spec = {"columns": columns, "n_cont": int(prepared.data.x_cont[0].shape[1]),   # + key statistics
            "out_dim": len(roles.classes) if roles.task == "multiclass" else 1,
            "hidden": cfg.hidden_sizes, "dropout": cfg.dropout, "emb_dropout": cfg.emb_dropout,
            "interactions": cfg.interactions, "sparse": cfg.sparse}
    model = TabularEmbeddingModel(spec, matrices=start_matrices(aligned, cfg.normalize),
                                  masks={c: a.mask for c, a in aligned.items()}, seed=cfg.seed)
    if warm is not None:
        run.warm_record = warm_start_model(model, warm, vocabs)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    # tiny batches run fastest on one thread; more only pays on large tables
    rows = len(prepared.data.y[0])
    torch.set_num_threads(1 if cfg.exact else cfg.threads or (1 if rows < 200_000 else os.cpu_count() or 1))
    torch.use_deterministic_algorithms(deterministic or cfg.exact)
    try:
        data = with_class_weights(prepared.data, cfg.class_weight)
        device = resolve_device(cfg.device)
        if cfg.epochs == 0:
            result = score_as_is(model, data, on_epoch, device)
        elif cfg.solver == "lbfgs":
            result = fit_full_batch(model, data, cfg, on_epoch, device)
        else:
            result = fit(model, data, cfg, checkpoint_dir, resume=cfg.resume, on_epoch=on_epoch, device=device)
        if data.has_test:
            found = evaluate(result.model, data, split=2)
            result.test = {"test_" + k.removeprefix("val_"): v for k, v in found.items()}
        return result
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@step(name="baselines")
def fit_baselines(run: FinetuneRun) -> list:
    """Linear probe and kNN on the frozen pretrained vectors (none without pretrained columns),
    then a GBM on the raw columns and with the vectors (catvec.finetuning.gbm; skipped with
    one note in run.notes when no GBM library is installed)."""
    from catvec.finetuning.baselines import features, knn, linear_probe
    from catvec.finetuning.gbm import GBMUnavailable, gbm_baselines, vector_columns
    from catvec.finetuning.metrics import main_metric
    from catvec.finetuning.training import with_class_weights

    data, metric = with_class_weights(run.prepared.data, run.cfg.class_weight), main_metric(run.roles.task, run.cfg.metric)
    n_cont = len(run.roles.cont_cols)      # the table's own columns: the key statistics are the model's
    data = dataclasses.replace(data, x_cont=tuple(x[:, :n_cont] for x in data.x_cont))
    results = []
    if run.aligned:
        feats = features(run)
        results += [linear_probe(feats, data, metric), knn(feats, data, metric)]
    try:
        results += gbm_baselines(data, vector_columns(run), metric, seed=run.cfg.seed)
    except GBMUnavailable as exc:
        log.info("%s", exc)             # the note reaches the terminal and report.md with the comparison
        run.notes.append(str(exc))
    return results


@step(name="export")
def export_model(run: FinetuneRun, staging: Path, version: str, manifest: dict | None = None) -> Path:
    """Write the complete model directory into `staging`: the best model of cfg.mode, and
    the scratch baseline's metrics beside it when it was trained."""
    from catvec.finetuning.metrics import metrics_json
    from catvec.finetuning.modeldir import write_model_dir
    from catvec.finetuning.warm_start import initial_rows
    from catvec.reports.render import finetune_markdown

    cfg, roles, main = run.cfg, run.roles, run.fits[run.cfg.mode]
    scratch = run.fits.get("scratch") if cfg.mode != "scratch" else None
    metrics = metrics_json(main, scratch, roles.task, cfg.metric, run.baselines)
    if run.auto:
        metrics["auto"] = run.auto
    if run.notes:
        metrics["notes"] = run.notes
    if run.warm_record:
        metrics["warm_start"] = run.warm_record
        manifest = {**(manifest or {}), "warm_start": run.warm_record}
    alignment = alignment_json(run)
    report = finetune_markdown(metrics, alignment, roles, run.labeled.name, cfg, version)
    extra = ()
    if main.history:
        from catvec.reports.plots import CURVES_FILE, plot_training_curves

        plot_training_curves(metrics, staging / CURVES_FILE)
        report += f"\n## Training curves\n\n![training curves]({CURVES_FILE})\n"
        extra = (CURVES_FILE,)
    data = run.prepared.data
    initial = initial_rows(main.model, start_matrices(run.aligned, run.cfg.normalize), bool(run.warm_record))
    return write_model_dir(staging, main.model, roles, run.vocabs, run.prepared.scaler, data.y_mean, data.y_std,
                           metrics, alignment, report, {"version": version, **(manifest or {})}, extra_files=extra,
                           initial=initial, key_stats=run.prepared.key_stats, blend=run.blend)


# ---- composition -----------------------------------------------------------------------

def finetune(cfg: FinetuneConfig, table=None, on_epoch=None, on_roles=None) -> FinetuneResult:
    """Labeled table + pretrained vectors -> a new complete model version in cfg.out.

    on_epoch(mode, epoch, total, info) reports progress; on_roles(roles) shows the columns used.
    Example: finetune(FinetuneConfig(table="data/labels.csv", target="spend", compare=True))
    """
    from catvec.finetuning.metrics import main_metric

    from catvec.finetuning.device import resolve_device

    cfg.validate()
    resolve_device(cfg.device)          # --device cuda without CUDA fails here, before any work
    _check_out_is_not_vectors(cfg)
    check_writable(cfg.out)
    warm = None
    if cfg.warm_start:
        from catvec.finetuning.warm_start import inherit

        warm = load_previous_model(cfg)
        cfg = inherit(cfg, warm)
    run = FinetuneRun(cfg, warm=warm)
    run.labeled = load_table(cfg, table)
    run.vectors = load_pretrained(cfg)
    run.roles = assign_roles(run)
    if warm is not None:
        from catvec.finetuning.warm_start import check_fits

        check_fits(warm, run.roles, run.vectors)
    if on_roles is not None:
        on_roles(run.roles)
    run.vocabs = build_vocabs(run)
    run.aligned = align_columns(run)
    run.prepared = prepare_data(run)
    store = VersionStore(cfg.out)
    store.prepare()
    parent = store.latest_name()
    checkpoints = Path(cfg.out) / CHECKPOINTS / checkpoint_key(cfg, run.labeled, run.vectors)
    if cfg.resume and not list(checkpoints.glob("*/checkpoint.json")):
        log.warning("resume: no checkpoint for this table, these vectors and options in %s; starting at epoch 1",
                    checkpoints.parent)
    try:
        train_all(run, checkpoints, on_epoch)
    except OSError as exc:
        raise CatvecError(f"writing checkpoints to {checkpoints} failed ({describe_os_error(exc)}); "
                          f"latest is unchanged") from None
    with store.staged() as (name, staging):
        manifest = {"kind": "finetune", "parent": parent, "params": dataclasses.asdict(cfg),
                    "input": {"table": run.labeled.name, "checksum": run.labeled.checksum,
                              "vectors": sorted(run.vectors)}}
        export_model(run, staging, name, manifest)
        final = publish_version(store, name, staging, cfg.keep)
    shutil.rmtree(checkpoints, ignore_errors=True)
    metrics = json.loads((final / "metrics.json").read_text(encoding="utf-8"))
    best = main_metric(run.roles.task, cfg.metric)
    log.info("finetune: version %s, best %s %s", name, best, metrics["best"][best])
    return FinetuneResult(version=name, path=final, metrics=metrics, alignment=alignment_json(run))


def check_fit(cfg: FinetuneConfig) -> None:
    """The roles check a run starts with, as plain calls: a scheduled run (flows/finetune.py)
    calls it before its tasks, so vectors whose keys do not fit the table (a trigger from
    another OUT, say) end the run with one line, not a task's traceback. Costs one extra read
    of the table and the vectors; skipped with --warm-start (the previous model fills roles)."""
    from catvec.finetuning.roles import resolve_roles

    if cfg.warm_start:
        return
    labeled = load_table.fn(cfg)
    resolve_roles(labeled.frame, labeled.name, cfg, load_pretrained.fn(cfg))


def train_all(run: FinetuneRun, checkpoints: Path, on_epoch=None) -> None:
    """The main fit (or the --auto search, which replaces run.cfg by the chosen settings),
    then with --compare the scratch run and the baselines, all on the same split; then the
    --blend of the chosen model (catvec.finetuning.ensemble)."""
    from catvec.finetuning.auto import auto_enabled, search
    from catvec.finetuning.ensemble import blend_enabled, blend_run, keep_member
    from catvec.finetuning.metrics import main_metric

    def report(label):
        return (lambda e, t, info: on_epoch(label, e, t, info)) if on_epoch else None

    cfg, data = run.cfg, run.prepared.data
    if run.aligned and auto_enabled(cfg, len(data.y[0])):   # nothing to choose without vectors
        def train(i, candidate):
            label = f"{candidate.mode} {'mlp' if candidate.hidden else 'linear'} #{i + 1}"
            fit = train_model(run, candidate.mode, checkpoints / f"auto-{i}", report(label), cfg=candidate)
            if blend_enabled(cfg.blend, run.roles.task, True, True):
                keep_member(run.members, fit, main_metric(run.roles.task, cfg.metric))
            return fit

        chosen, fit, run.auto = search(cfg, main_metric(run.roles.task, cfg.metric), len(data.y[0]),
                                       data.n_classes, train)
        run.cfg, run.fits[chosen.mode] = chosen, fit
    else:
        run.fits[cfg.mode] = train_model(run, cfg.mode, checkpoints / cfg.mode, report(cfg.mode))
    if cfg.compare and run.cfg.mode != "scratch":  # the baseline trains with the settings asked for
        run.fits["scratch"] = train_model(run, "scratch", checkpoints / "scratch", report("scratch"), cfg=cfg)
    if cfg.compare:
        run.baselines = fit_baselines(run)
    if blend_enabled(cfg.blend, run.roles.task, run.auto is not None, bool(run.aligned)):
        run.blend = blend_run(run)             # last: it gives the validation labels to the saved model


def start_matrices(aligned: dict, normalize: str) -> dict:
    """{pretrained column: the rows its embedding starts from}: aligned, unit rows with normalize unit."""
    from catvec.base.scoring import unit_rows

    return {c: unit_rows(a.matrix) if normalize == "unit" else a.matrix for c, a in aligned.items()}


def alignment_json(run: FinetuneRun) -> dict:
    """{pretrained column: AlignmentReport as JSON} (alignment.json)."""
    return {col: a.report.to_json() for col, a in run.aligned.items()}


def checkpoint_key(cfg: FinetuneConfig, labeled: LabeledTable, vectors: dict) -> str:
    """Same table, same weight files and same training options -> same checkpoint dir."""
    params = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_IN_KEY}
    weights = {d: hashlib.sha256(v.matrix.tobytes()).hexdigest() + str(len(v))
               for d, v in vectors.items()}
    blob = json.dumps({"table": labeled.checksum, "weights": weights, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _check_out_is_not_vectors(cfg: FinetuneConfig) -> None:
    """Models and pretrained vectors must not share an OUT/latest."""
    out = Path(cfg.out).resolve()
    for directory in [cfg.vectors, *cfg.pretrained_map.values()]:
        vectors = Path(directory).resolve()
        if out == vectors or out in vectors.parents:
            raise CatvecError(f"out {cfg.out} holds the pretrained vectors {directory}; "
                              f"write models to another directory, e.g. --out models")

"""The finetune steps: plain functions marked `@step` (catvec.base.steps), each taking the
config groups it reads (catvec.finetuning.config) and the results of earlier steps, and
returning what the next step needs. `catvec.finetuning.pipeline.finetune` calls them in
order; a Prefect flow runs each as a task (flows/adapter.py).

    load_table(table)                                    -> LabeledTable
    load_pretrained(table, init, uses_vectors)           -> {weight dir: Vectors}
    load_previous_model(path)                            -> WarmStart (--warm-start)
    assign_roles(labeled, table, split, vectors)         -> Roles
    build_vocabs(labeled, roles, vectors, init, split)   -> {column: Vocab}
    align_columns(labeled, roles, vocabs, vectors, init, model) -> {pretrained column: Aligned}
    prepare_data(labeled, roles, vocabs, split, key_stats)      -> Prepared (arrays for a fit)
    train_model(mode, roles, vocabs, aligned, prepared, setup)  -> (FitResult, warm start record)
    fit_baselines(roles, aligned, prepared, fit)         -> (BaselineResults, notes)
    export_model(staging, version, manifest, ..., trained)      -> the complete model dir
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catvec.base.errors import CatvecError
from catvec.base.steps import step
from catvec.base.vectors import Vectors
from catvec.finetuning.align import AlignmentReport
from catvec.finetuning.config import Fit, Init, Model, Setup, Split, Table
from catvec.finetuning.keystats import KeyStats
from catvec.finetuning.labeled import Roles, Scaler
from catvec.finetuning.vocab import Vocab
from catvec.finetuning.warm_start import WarmStart

if TYPE_CHECKING:  # torch and polars load only when a step runs
    import polars as pl

    from catvec.finetuning.baselines import BaselineResult
    from catvec.finetuning.model import TabularEmbeddingModel
    from catvec.finetuning.training import FitResult, TrainData

log = logging.getLogger(__name__)


@dataclass
class LabeledTable:
    frame: pl.DataFrame
    name: str
    checksum: str


@dataclass
class Aligned:
    matrix: np.ndarray     # (len(vocab), dim) float32
    mask: np.ndarray       # (len(vocab),) bool: rows with a pretrained vector
    report: AlignmentReport


@dataclass
class Prepared:
    data: TrainData
    scaler: Scaler                  # continuous features, fitted on the training rows only
    is_val: np.ndarray              # (n_rows,) bool
    key_stats: KeyStats | None = None   # binary / regression targets with --key-stats


@dataclass
class Trained:
    """The training phase: the main fit and what was compared with it on the same split."""

    setup: Setup                     # the main fit's settings (with --auto: the chosen candidate)
    main: FitResult
    scratch: FitResult | None = None # the scratch run (--compare)
    baselines: list[BaselineResult] = field(default_factory=list)
    auto: dict | None = None         # --auto: candidates and the choice (metrics.json)
    warm_record: dict | None = None  # what the warm start copied (manifest, metrics.json)
    notes: list = field(default_factory=list)       # one line each: what --compare could not run, and why
    members: list = field(default_factory=list)     # --blend: the best --auto candidates (ensemble.keep_member)
    blend: object = None                            # catvec.finetuning.ensemble.Blend (--blend), or None


def uses_vectors(mode: str, compare: bool) -> bool:
    """Scratch mode without --compare reads no pretrained vectors."""
    return mode != "scratch" or compare


# ---- reading --------------------------------------------------------------------------

@step(name="load-table", io=True)
def load_table(table: Table, frame=None) -> LabeledTable:
    """Read the labeled table (table.table, or a pandas / polars DataFrame)."""
    from catvec.finetuning.labeled import read_table

    if frame is None and not table.table:
        raise CatvecError("no labeled table given; pass --table PATH (CSV, TSV or Parquet)")
    data, name, checksum = read_table(frame if frame is not None else table.table)
    return LabeledTable(data, name, checksum)


@step(name="load-vectors", io=True)
def load_pretrained(table: Table, init: Init, wanted: bool = True) -> dict[str, Vectors]:
    """Load every weight dir the table's columns name (none when not `wanted`), with keys
    composed from item attributes and the rows init.pretrained_input asks for."""
    from catvec.base.vectors import load_vectors
    from catvec.finetuning.align import pretrained_input, with_attributes

    if not wanted:
        return {}
    loaded = {d: load_vectors(d) for d in table.weight_dirs}
    if init.item_attributes:
        loaded = {d: with_attributes(v, d, init.item_attributes, init.attribute_cols, init.attribute_sep)
                  for d, v in loaded.items()}
    return {d: pretrained_input(v, init.pretrained_input, d) for d, v in loaded.items()}


@step(name="load-previous-model", io=True)
def load_previous_model(path: str) -> WarmStart:
    """--warm-start: the previous model and the settings it was trained with."""
    from catvec.finetuning.warm_start import load_warm_start

    return load_warm_start(path)


# ---- columns and rows -------------------------------------------------------------------

@step(name="resolve-roles")
def assign_roles(labeled: LabeledTable, table: Table, split: Split, vectors: dict[str, Vectors],
                 wanted: bool = True) -> Roles:
    """Target, task, categorical / continuous columns and which columns start pretrained."""
    from catvec.finetuning.roles import resolve_roles

    return resolve_roles(labeled.frame, labeled.name, table, split, vectors, wanted)


def split_masks(labeled: LabeledTable, split: Split, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(is_val, is_test), bool (n_rows,) each: the same rows for every step that asks."""
    from catvec.finetuning.labeled import split_rows, test_rows

    is_val = split_rows(labeled.frame, split.val_fraction, seed, split.split_col, split.group_col, labeled.name)
    return is_val, test_rows(labeled.frame, split.split_col)


@step(name="build-vocabs")
def build_vocabs(labeled: LabeledTable, roles: Roles, vectors: dict[str, Vectors], init: Init, split: Split,
                 seed: int) -> dict[str, Vocab]:
    """One Vocab per categorical column: table values (+ pretrained keys unless labeled_only);
    with hash buckets, the keys of at least min_freq training rows, then the buckets."""
    from catvec.finetuning.vocab import build_vocab

    frame, vocabs = labeled.frame, {}
    for col in roles.cat_cols:
        n = init.buckets_of(col)
        if n:   # own rows only for keys of the training rows: validation and test keys count as unseen
            is_val, is_test = split_masks(labeled, split, seed)
            vocabs[col] = build_vocab(frame[col].filter(~is_val & ~is_test), buckets=n, min_freq=init.min_freq)
            continue
        source = vectors.get(roles.pretrained.get(col)) if col in roles.pretrained else None
        keys = source.keys if source is not None and not init.labeled_only else None
        vocabs[col] = build_vocab(frame[col], keys)
    return vocabs


@step(name="align")
def align_columns(labeled: LabeledTable, roles: Roles, vocabs: dict[str, Vocab], vectors: dict[str, Vectors],
                  init: Init, model: Model, seed: int) -> dict[str, Aligned]:
    """Initial matrices of the pretrained columns, with their AlignmentReports."""
    from catvec.finetuning.align import add_traffic, align, fill_buckets, source_rows

    dims, aligned = model.emb_dim_overrides, {}
    for i, (col, vectors_dir) in enumerate(roles.pretrained.items()):
        vocab, source = vocabs[col], vectors[vectors_dir]
        counts, name = vocab.counts(labeled.frame[col]), f"{labeled.name}: column {col!r}"
        # with buckets, coverage is counted once the bucket rows have their pretrained means
        matrix, report = align(source, vocab, init.oov_init, None if vocab.buckets else counts, dim=dims.get(col),
                               seed=seed + i, name=name, min_row_coverage=init.min_coverage)
        mask = source_rows(source, vocab) >= 0                       # (len(vocab),), <unk> False
        if vocab.buckets:
            fill_buckets(matrix, mask, source, vocab, report)
            add_traffic(report, counts, mask, name, init.min_coverage)
        log.info("%s: %s", col, report.summary())
        aligned[col] = Aligned(matrix, mask, report)
    return aligned


@step(name="prepare")
def prepare_data(labeled: LabeledTable, roles: Roles, vocabs: dict[str, Vocab], split: Split, key_stats: str,
                 seed: int, warm: WarmStart | None = None) -> Prepared:
    """Split, scale with training statistics only (a warm start: the previous model's), and
    encode: arrays ready for a fit. key_stats: Model.key_stats (auto or off)."""
    from catvec.finetuning.keystats import key_stat_columns, key_stats_enabled
    from catvec.finetuning.labeled import Scaler, feature_arrays, target_labels
    from catvec.finetuning.training import TrainData

    frame, name = labeled.frame, labeled.name
    y = target_labels(frame, roles, name)
    is_val, is_test = split_masks(labeled, split, seed)
    tr = ~is_val & ~is_test
    x_cat, x_cont = feature_arrays(frame, roles, vocabs, None, name)
    y_mean, y_std = 0.0, 1.0
    if roles.task == "regression":
        y_mean, y_std = (warm.model.y_mean, warm.model.y_std) if warm else \
            (float(y[tr].mean()), float(y[tr].std() or 1.0))
        y = ((y - y_mean) / y_std).astype(np.float32)
    stats = None
    if key_stats_enabled(key_stats, roles.task) and roles.cat_cols:   # appended before scaling
        stats, columns = key_stat_columns(x_cat, y, tr, [len(vocabs[c]) for c in roles.cat_cols], roles.task, seed)
        x_cont = np.concatenate([x_cont, columns], axis=1)
    # a warm start keeps the previous model's scaling: its weights were trained on those inputs
    scaler = warm.model.scaler if warm else Scaler.fit(x_cont[tr])
    x_cont = scaler.transform(x_cont)
    splits = (tr, is_val, is_test) if is_test.any() else (tr, is_val)
    data = TrainData(task=roles.task, x_cat=tuple(x_cat[m] for m in splits),
                     x_cont=tuple(x_cont[m] for m in splits), y=tuple(y[m] for m in splits),
                     y_mean=y_mean, y_std=y_std, n_classes=len(roles.classes or []))
    return Prepared(data=data, scaler=scaler, is_val=is_val, key_stats=stats)


# ---- training ---------------------------------------------------------------------------

def build_model(mode: str, roles: Roles, vocabs: dict[str, Vocab], aligned: dict[str, Aligned], n_cont: int,
                setup: Setup, warm: WarmStart | None = None) -> tuple[TabularEmbeddingModel, dict | None]:
    """The tabular model for `mode`, its pretrained rows from `aligned`; with a warm start,
    started from the previous model. -> (TabularEmbeddingModel, warm start record or None)."""
    from catvec.finetuning.model import TabularEmbeddingModel, embedding_size
    from catvec.finetuning.warm_start import column_dims, warm_start_model

    model = setup.model
    dims = {**model.emb_dim_overrides, **(column_dims(warm) if warm else {})}
    columns = []
    for col in roles.cat_cols:
        n = len(vocabs[col])
        if col in aligned:
            columns.append({"name": col, "num": n, "dim": int(aligned[col].matrix.shape[1]), "mode": mode})
        else:
            columns.append({"name": col, "num": n, "dim": dims.get(col, embedding_size(n, model.emb_size_rule)),
                            "mode": "scratch"})
    spec = {"columns": columns, "n_cont": n_cont, "out_dim": len(roles.classes) if roles.task == "multiclass" else 1,
            "hidden": model.hidden_sizes, "dropout": model.dropout, "emb_dropout": model.emb_dropout,
            "interactions": model.interactions, "sparse": setup.fit.sparse}
    built = TabularEmbeddingModel(spec, matrices=start_matrices(aligned, setup.init.normalize),
                                  masks={c: a.mask for c, a in aligned.items()}, seed=setup.fit.seed)
    return built, (warm_start_model(built, warm, vocabs) if warm is not None else None)


@step(name="train", run_name="train-{mode}")
def train_model(mode: str, roles: Roles, vocabs: dict[str, Vocab], aligned: dict[str, Aligned], prepared: Prepared,
                setup: Setup, warm: WarmStart | None = None, checkpoint_dir: Path | None = None, resume: bool = False,
                on_epoch=None) -> tuple[FitResult, dict | None]:
    """Build the model for `mode` and fit it with setup.fit (epochs 0: score it as it is).
    -> (FitResult, the warm start record or None)."""
    import torch

    from catvec.finetuning.device import resolve_device
    from catvec.finetuning.training import evaluate, fit, fit_full_batch, score_as_is, with_class_weights

    settings = setup.fit
    torch.manual_seed(settings.seed)
    model, record = build_model(mode, roles, vocabs, aligned, int(prepared.data.x_cont[0].shape[1]),  # + key stats
                                setup, warm if mode != "scratch" else None)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    # tiny batches run fastest on one thread; more only pays on large tables
    rows = len(prepared.data.y[0])
    torch.set_num_threads(1 if settings.exact else settings.threads or (1 if rows < 200_000 else os.cpu_count() or 1))
    torch.use_deterministic_algorithms(deterministic or settings.exact)
    try:
        data = with_class_weights(prepared.data, settings.class_weight)
        device = resolve_device(settings.device)
        if settings.epochs == 0:
            result = score_as_is(model, data, on_epoch, device)
        elif settings.solver == "lbfgs":
            result = fit_full_batch(model, data, settings, on_epoch, device)
        else:
            result = fit(model, data, settings, checkpoint_dir, resume=resume, on_epoch=on_epoch, device=device)
        if data.has_test:
            found = evaluate(result.model, data, split=2)
            result.test = {"test_" + k.removeprefix("val_"): v for k, v in found.items()}
        return result, record
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@step(name="baselines")
def fit_baselines(roles: Roles, aligned: dict[str, Aligned], prepared: Prepared,
                  settings: Fit) -> tuple[list[BaselineResult], list[str]]:
    """Linear probe and kNN on the frozen pretrained vectors (none without pretrained columns),
    then a GBM on the raw columns and with the vectors (catvec.finetuning.gbm). -> (results,
    notes): a note says why the GBMs were skipped (no GBM library installed)."""
    from catvec.finetuning.baselines import features, knn, linear_probe
    from catvec.finetuning.gbm import GBMUnavailable, gbm_baselines, vector_columns
    from catvec.finetuning.metrics import main_metric
    from catvec.finetuning.training import with_class_weights

    data, metric = with_class_weights(prepared.data, settings.class_weight), main_metric(roles.task, settings.metric)
    n_cont = len(roles.cont_cols)      # the table's own columns: the key statistics are the model's
    data = dataclasses.replace(data, x_cont=tuple(x[:, :n_cont] for x in data.x_cont))
    results, notes = [], []
    if aligned:
        feats = features(aligned, roles.cat_cols, data.x_cat)
        results += [linear_probe(feats, data, metric), knn(feats, data, metric)]
    try:
        results += gbm_baselines(data, vector_columns(aligned, roles.cat_cols), metric, seed=settings.seed)
    except GBMUnavailable as exc:
        log.info("%s", exc)             # the note reaches the terminal and report.md with the comparison
        notes.append(str(exc))
    return results, notes


# ---- the model directory ----------------------------------------------------------------

@step(name="export")
def export_model(staging: Path, version: str, manifest: dict, table_name: str, roles: Roles, vocabs: dict[str, Vocab],
                 aligned: dict[str, Aligned], prepared: Prepared, trained: Trained) -> Path:
    """Write the complete model directory into `staging`: the main model, and the scratch
    run's and the baselines' metrics beside it when they ran."""
    from catvec.base.layout import CURVES_FILE
    from catvec.finetuning.metrics import metrics_json
    from catvec.finetuning.modeldir import write_model_dir
    from catvec.finetuning.warm_start import initial_rows
    from catvec.reports.finetune_report import finetune_markdown

    setup, main = trained.setup, trained.main
    metrics = metrics_json(main, trained.scratch, roles.task, setup.fit.metric, trained.baselines)
    for key, value in (("auto", trained.auto), ("notes", trained.notes), ("warm_start", trained.warm_record)):
        if value:
            metrics[key] = value
    if trained.warm_record:
        manifest = {**manifest, "warm_start": trained.warm_record}
    alignment = alignment_json(aligned)
    report = finetune_markdown(metrics, alignment, roles, table_name, setup, version)
    extra = ()
    if main.history:
        from catvec.reports.plots import plot_training_curves

        plot_training_curves(metrics, staging / CURVES_FILE)
        report += f"\n## Training curves\n\n![training curves]({CURVES_FILE})\n"
        extra = (CURVES_FILE,)
    data = prepared.data
    initial = initial_rows(main.model, start_matrices(aligned, setup.init.normalize), bool(trained.warm_record))
    return write_model_dir(staging, main.model, roles, vocabs, prepared.scaler, data.y_mean, data.y_std,
                           metrics, alignment, report, {"version": version, **manifest}, extra_files=extra,
                           initial=initial, key_stats=prepared.key_stats, blend=trained.blend)


def start_matrices(aligned: dict[str, Aligned], normalize: str) -> dict[str, np.ndarray]:
    """{pretrained column: the rows its embedding starts from}: aligned, unit rows with normalize unit."""
    from catvec.base.scoring import unit_rows

    return {c: unit_rows(a.matrix) if normalize == "unit" else a.matrix for c, a in aligned.items()}


def alignment_json(aligned: dict[str, Aligned]) -> dict:
    """{pretrained column: AlignmentReport as JSON} (alignment.json)."""
    return {col: a.report.to_json() for col, a in aligned.items()}

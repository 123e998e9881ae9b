"""The finetune pipeline as steps, their composition `finetune(cfg)`, and `predict`.

Each step takes paths, configs or small objects and returns the same, so a Prefect
flow can wrap each one as a task and run exactly what the CLI runs:

    load_table_step(cfg, table=None)                  -> LabeledTable (frame, name, checksum)
    load_vectors_step(cfg)                            -> {weight dir: Vectors}
    resolve_roles_step(labeled, vectors, cfg)         -> Roles
    build_vocabs_step(labeled, roles, vectors, cfg)   -> {column: Vocab}
    align_step(labeled, roles, vocabs, vectors, cfg)  -> {column: Aligned (matrix, mask, report)}
    prepare_step(labeled, roles, vocabs, cfg)         -> Prepared (TrainData, Scaler, split)
    train_step(prepared, roles, vocabs, aligned, cfg, mode, checkpoint_dir, on_epoch)
                                                      -> FitResult (best model, history)
    export_step(staging, fit, scratch, prepared, labeled, roles, vocabs, aligned, cfg, version, manifest)
                                                      -> staging path (a complete model dir)
    publish_step(out, version, staging, keep)         -> OUT/<version>, OUT/latest moved

    finetune(cfg, table=None, on_epoch=None, on_roles=None, run_step=None)
                                                      -> FinetuneResult(version, path, metrics, alignment)
    predict(model_dir, table, out)                    -> PredictResult(path, rows)
    catvec.finetuning.modeldir.load_model(model_dir)             -> LoadedModel (model, roles, vocabs, scaler)

`run_step(step, *args)` is how each step is called (default: a plain call); a flow passes
one that runs the step as a task. train_step runs once for cfg.mode and, with
cfg.compare, once more for "scratch" on the same split.

Nothing is written to OUT/<version> or OUT/latest until every file is complete; a failed
or killed run leaves earlier versions and `latest` untouched. Per-epoch checkpoints live
in OUT/.checkpoints/<key of inputs + config>/ so `resume=True` finds them after a crash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catvec.base.config import FinetuneConfig
from catvec.base.errors import CatvecError
from catvec.base.store import VersionStore, describe_os_error

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


@dataclass
class FinetuneResult:
    version: str
    path: Path             # OUT/<version>
    metrics: dict          # the content of metrics.json
    alignment: dict        # {column: AlignmentReport as JSON}


# ---- steps ---------------------------------------------------------------------------

def load_table_step(cfg: FinetuneConfig, table=None) -> LabeledTable:
    """Read the labeled table (cfg.table, or a pandas / polars DataFrame)."""
    from catvec.finetuning.labeled import read_table

    if table is None and not cfg.table:
        raise CatvecError("no labeled table given; pass --table PATH (CSV, TSV or Parquet)")
    frame, name, checksum = read_table(table if table is not None else cfg.table)
    return LabeledTable(frame, name, checksum)


def load_vectors_step(cfg: FinetuneConfig) -> dict:
    """Load every weight dir the config names. Scratch mode without --compare needs none."""
    from catvec.base.vectors import load_vectors

    if cfg.mode == "scratch" and not cfg.compare:
        return {}
    dirs = dict.fromkeys([*cfg.pretrained_map.values()] or [cfg.vectors])
    return {d: load_vectors(d) for d in dirs}


def resolve_roles_step(labeled: LabeledTable, vectors: dict, cfg: FinetuneConfig):
    from catvec.finetuning.roles import resolve_roles

    return resolve_roles(labeled.frame, labeled.name, cfg, vectors)


def build_vocabs_step(labeled: LabeledTable, roles, vectors: dict, cfg: FinetuneConfig) -> dict:
    """One Vocab per categorical column: table values (+ pretrained keys unless labeled_only)."""
    from catvec.finetuning.vocab import build_vocab

    vocabs = {}
    for col in roles.cat_cols:
        source = vectors.get(roles.pretrained.get(col)) if col in roles.pretrained else None
        keys = source.keys if source is not None and not cfg.labeled_only else None
        vocabs[col] = build_vocab(labeled.frame[col], keys)
    return vocabs


def align_step(labeled: LabeledTable, roles, vocabs: dict, vectors: dict, cfg: FinetuneConfig) -> dict:
    """Initial matrices of the pretrained columns, with their AlignmentReports."""
    from catvec.finetuning.align import align, source_rows

    dims = cfg.emb_dim_overrides
    aligned = {}
    for i, (col, vectors_dir) in enumerate(roles.pretrained.items()):
        vocab = vocabs[col]
        matrix, report = align(vectors[vectors_dir], vocab, cfg.oov_init, vocab.counts(labeled.frame[col]),
                               dim=dims.get(col), seed=cfg.seed + i, name=f"{labeled.name}: column {col!r}",
                               min_row_coverage=cfg.min_coverage)
        log.info("%s: %s", col, report.summary())
        mask = source_rows(vectors[vectors_dir], vocab) >= 0          # (len(vocab),), <unk> False
        aligned[col] = Aligned(matrix, mask, report)
    return aligned


def prepare_step(labeled: LabeledTable, roles, vocabs: dict, cfg: FinetuneConfig) -> Prepared:
    """Split, scale with training statistics only, and encode: arrays ready for `fit`."""
    from catvec.finetuning.labeled import Scaler, feature_arrays, split_rows, target_labels
    from catvec.finetuning.training import TrainData

    frame, name = labeled.frame, labeled.name
    y = target_labels(frame, roles, name)
    is_val = split_rows(frame, cfg.val_fraction, cfg.seed, cfg.split_col, cfg.group_col, name)
    x_cat, x_cont = feature_arrays(frame, roles, vocabs, None, name)
    scaler = Scaler.fit(x_cont[~is_val])
    x_cont = scaler.transform(x_cont)
    y_mean, y_std = 0.0, 1.0
    if roles.task == "regression":
        y_mean, y_std = float(y[~is_val].mean()), float(y[~is_val].std() or 1.0)
        y = ((y - y_mean) / y_std).astype(np.float32)
    tr, va = ~is_val, is_val
    data = TrainData(task=roles.task, x_cat=(x_cat[tr], x_cat[va]), x_cont=(x_cont[tr], x_cont[va]),
                     y=(y[tr], y[va]), y_mean=y_mean, y_std=y_std)
    return Prepared(data=data, scaler=scaler, is_val=is_val)


def train_step(prepared: Prepared, roles, vocabs: dict, aligned: dict, cfg: FinetuneConfig, mode: str,
               checkpoint_dir=None, on_epoch=None):
    """Build the model for `mode` and fit it. -> catvec.finetuning.training.FitResult."""
    import torch

    from catvec.finetuning.model import TabularEmbeddingModel, embedding_size
    from catvec.finetuning.training import TrainSettings, fit

    torch.manual_seed(cfg.seed)
    dims = cfg.emb_dim_overrides
    columns = []
    for col in roles.cat_cols:
        n = len(vocabs[col])
        if col in aligned:
            columns.append({"name": col, "num": n, "dim": int(aligned[col].matrix.shape[1]), "mode": mode})
        else:
            columns.append({"name": col, "num": n, "dim": dims.get(col, embedding_size(n, cfg.emb_size_rule)),
                            "mode": "scratch"})
    spec = {"columns": columns, "n_cont": len(roles.cont_cols),
            "out_dim": len(roles.classes) if roles.task == "multiclass" else 1,
            "hidden": cfg.hidden_sizes, "dropout": cfg.dropout, "emb_dropout": cfg.emb_dropout,
            "interactions": cfg.interactions, "sparse": cfg.sparse}
    model = TabularEmbeddingModel(spec, matrices={c: a.matrix for c, a in aligned.items()},
                                  masks={c: a.mask for c, a in aligned.items()}, seed=cfg.seed)
    settings = TrainSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                             embedding_lr=cfg.embedding_lr, weight_decay=cfg.weight_decay, emb_l2=cfg.emb_l2,
                             patience=cfg.patience, unfreeze_after=cfg.unfreeze_after, sparse=cfg.sparse,
                             seed=cfg.seed)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    # tiny batches run fastest on one thread; more only pays on large tables
    rows = len(prepared.data.y[0])
    torch.set_num_threads(1 if cfg.exact else cfg.threads or (1 if rows < 200_000 else os.cpu_count() or 1))
    torch.use_deterministic_algorithms(deterministic or cfg.exact)
    try:
        return fit(model, prepared.data, settings, checkpoint_dir, resume=cfg.resume, on_epoch=on_epoch)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def export_step(staging: Path, fit, scratch, prepared: Prepared, labeled: LabeledTable, roles, vocabs: dict,
                aligned: dict, cfg: FinetuneConfig, version: str, manifest: dict | None = None) -> Path:
    """Write the complete model directory (fit's best model; scratch's metrics if given) into `staging`."""
    from catvec.finetuning.metrics import metrics_json
    from catvec.reports.render import report_markdown
    from catvec.finetuning.modeldir import write_model_dir

    metrics = metrics_json(fit, scratch, roles.task)
    alignment = {col: a.report.to_json() for col, a in aligned.items()}
    report = report_markdown(metrics, alignment, roles, labeled.name, cfg, version)
    extra = ()
    if fit.history:
        from catvec.reports.plots import CURVES_FILE, plot_training_curves

        plot_training_curves(metrics, staging / CURVES_FILE)
        report += f"\n## Training curves\n\n![training curves]({CURVES_FILE})\n"
        extra = (CURVES_FILE,)
    data = prepared.data
    return write_model_dir(staging, fit.model, roles, vocabs, prepared.scaler, data.y_mean, data.y_std,
                           metrics, alignment, report, {"version": version, **(manifest or {})}, extra_files=extra)


def publish_step(out, version: str, staging: Path, keep: int = 0) -> Path:
    """Move the complete staged model dir to OUT/<version>, then point OUT/latest at it."""
    store = VersionStore(out)
    final = store.commit(version, staging)
    store.publish(version)
    store.prune(keep)
    return final


# ---- composition -----------------------------------------------------------------------

def checkpoint_key(cfg: FinetuneConfig, labeled: LabeledTable, vectors: dict) -> str:
    """Same table, same weight files and same training options -> same checkpoint dir."""
    params = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_IN_KEY}
    weights = {d: hashlib.sha256(v.matrix.tobytes()).hexdigest() + str(len(v))
               for d, v in vectors.items()}
    blob = json.dumps({"table": labeled.checksum, "weights": weights, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def finetune(cfg: FinetuneConfig, table=None, on_epoch=None, on_roles=None, run_step=None) -> FinetuneResult:
    """Labeled table + pretrained vectors -> a new complete model version in cfg.out.

    on_epoch(mode, epoch, total, info) reports progress; on_roles(roles) shows the columns used.
    run_step(step, *args) runs each step (default: a plain call); the Prefect flow runs it as a task.
    Example: finetune(FinetuneConfig(table="data/labels.csv", target="spend", compare=True))
    """
    from catvec.pretraining.pipeline import call
    from catvec.finetuning.metrics import main_metric

    cfg.validate()
    _check_out_is_not_vectors(cfg)
    run_step = run_step or call
    labeled = run_step(load_table_step, cfg, table)
    vectors = run_step(load_vectors_step, cfg)
    roles = run_step(resolve_roles_step, labeled, vectors, cfg)
    if on_roles is not None:
        on_roles(roles)
    vocabs = run_step(build_vocabs_step, labeled, roles, vectors, cfg)
    aligned = run_step(align_step, labeled, roles, vocabs, vectors, cfg)
    prepared = run_step(prepare_step, labeled, roles, vocabs, cfg)
    store = VersionStore(cfg.out)
    store.prepare()
    parent = store.latest_name()
    checkpoints = Path(cfg.out) / CHECKPOINTS / checkpoint_key(cfg, labeled, vectors)
    if cfg.resume and not list(checkpoints.glob("*/checkpoint.json")):
        log.warning("resume: no checkpoint for this table, these vectors and options in %s; starting at epoch 1",
                    checkpoints.parent)
    modes = [cfg.mode] + (["scratch"] if cfg.compare and cfg.mode != "scratch" else [])
    fits = {}
    try:
        for mode in modes:
            report = (lambda e, t, info, m=mode: on_epoch(m, e, t, info)) if on_epoch else None
            fits[mode] = run_step(train_step, prepared, roles, vocabs, aligned, cfg, mode, checkpoints / mode, report)
    except OSError as exc:
        raise CatvecError(f"writing checkpoints to {checkpoints} failed ({describe_os_error(exc)}); "
                          f"latest is unchanged") from None
    with store.staged() as (name, staging):
        manifest = {"kind": "finetune", "parent": parent, "params": dataclasses.asdict(cfg),
                    "input": {"table": labeled.name, "checksum": labeled.checksum,
                              "vectors": sorted(vectors)}}
        run_step(export_step, staging, fits[cfg.mode], fits.get("scratch") if cfg.mode != "scratch" else None,
                 prepared, labeled, roles, vocabs, aligned, cfg, name, manifest)
        final = run_step(publish_step, cfg.out, name, staging, cfg.keep)
    shutil.rmtree(checkpoints, ignore_errors=True)
    metrics = json.loads((final / "metrics.json").read_text(encoding="utf-8"))
    log.info("finetune: version %s, best %s %s", name, main_metric(roles.task), metrics["best"][main_metric(roles.task)])
    return FinetuneResult(version=name, path=final, metrics=metrics,
                          alignment={col: a.report.to_json() for col, a in aligned.items()})


def _check_out_is_not_vectors(cfg: FinetuneConfig) -> None:
    """Models and pretrained vectors must not share an OUT/latest."""
    out = Path(cfg.out).resolve()
    for directory in [cfg.vectors, *cfg.pretrained_map.values()]:
        vectors = Path(directory).resolve()
        if out == vectors or out in vectors.parents:
            raise CatvecError(f"out {cfg.out} holds the pretrained vectors {directory}; "
                              f"write models to another directory, e.g. --out models")

"""The finetune pipeline: `finetune(cfg)` calls its steps (catvec.finetuning.steps) in order,
each with the config groups it reads (catvec.finetuning.config) and what earlier steps
returned.

    finetune(cfg, table=None)
        [load_previous_model (--warm-start) -> its settings and roles into cfg]
        load_table, load_pretrained       (io: a flow retries them while an input is missing)
        -> assign_roles [-> check_fits: the previous model fits these roles and vectors]
        -> build_vocabs -> align_columns -> prepare_data
        -> train_model (init.mode, or each --auto candidate, keeping the best on validation;
                        with --compare also "scratch", on the same split; epochs 0 scores a
                        warm-started model without training)
        -> fit_baselines (--compare: linear probe, kNN and GBMs)
        -> blend_chosen (--blend, after --auto: the best candidates averaged with a kNN vote)
        -> export_model (a complete model dir in staging) -> publish_version (OUT/latest)

The CLI calls `finetune` directly and the Prefect flow runs the same call with every step
as a task (flows/adapter.py). Nothing is written to OUT/<version> or OUT/latest until every
file is complete; a failed or killed run leaves earlier versions and `latest` untouched.
Per-epoch checkpoints live in OUT/.checkpoints/<key of the inputs and the settings>/ so
`resume=True` finds them after a crash. `timed` records each part's seconds in the
manifest's timings. Prediction with a model dir is catvec.finetuning.predict.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from catvec.base.errors import CatvecError
from catvec.base.layout import METRICS_FILE
from catvec.base.steps import timed
from catvec.base.store import VersionStore, publish_version
from catvec.base.writes import check_writable, describe_os_error
from catvec.finetuning.checkpoint import CHECKPOINTS, checkpoint_key
from catvec.finetuning.config import Compare, FinetuneConfig, Output, Setup, Split, Table
from catvec.finetuning.ensemble import blend_chosen, blend_enabled, keep_member
from catvec.finetuning.labeled import Roles
from catvec.finetuning.steps import (Aligned, Prepared, Trained, alignment_json, align_columns, assign_roles,
                                     build_vocabs, export_model, fit_baselines, load_pretrained, load_previous_model,
                                     load_table, prepare_data, train_model, uses_vectors)
from catvec.finetuning.vocab import Vocab
from catvec.finetuning.warm_start import WarmStart

log = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    version: str
    path: Path             # OUT/<version>
    metrics: dict          # the content of metrics.json
    alignment: dict        # {column: AlignmentReport as JSON}


def finetune(cfg: FinetuneConfig, table=None, on_epoch=None, on_roles=None) -> FinetuneResult:
    """Labeled table + pretrained vectors -> a new complete model version in cfg.out.

    `table` may be a pandas / polars DataFrame instead of cfg.table.
    on_epoch(mode, epoch, total, info) reports progress; on_roles(roles) shows the columns used.
    Example: finetune(FinetuneConfig(table="data/labels.csv", target="spend", compare=True))
    """
    from catvec.finetuning.device import resolve_device
    from catvec.finetuning.metrics import main_metric

    cfg.validate()
    t0, timings = time.perf_counter(), {}
    resolve_device(cfg.device)          # --device cuda without CUDA fails here, before any work
    _check_out_is_not_vectors(cfg.out, Table.of(cfg))
    check_writable(cfg.out)
    warm = None
    if cfg.warm_start:
        from catvec.finetuning.warm_start import check_fits, inherited_settings

        warm = load_previous_model(cfg.warm_start)
        cfg = dataclasses.replace(cfg, **inherited_settings(warm, Table.of(cfg), Setup.of(cfg))).validate()
    source, split, compare, output, setup = Table.of(cfg), Split.of(cfg), Compare.of(cfg), Output.of(cfg), Setup.of(cfg)
    init, model, seed = setup.init, setup.model, setup.fit.seed
    wanted = uses_vectors(init.mode, compare.compare)

    with timed(timings, "read_seconds"):
        labeled = load_table(source, table)
        vectors = load_pretrained(source, init, wanted)
    roles = assign_roles(labeled, source, split, vectors, wanted)
    if warm is not None:
        check_fits(warm, roles, vectors)
    if on_roles is not None:
        on_roles(roles)
    with timed(timings, "prepare_seconds"):
        vocabs = build_vocabs(labeled, roles, vectors, init, split, seed)
        aligned = align_columns(labeled, roles, vocabs, vectors, init, model, seed)
        prepared = prepare_data(labeled, roles, vocabs, split, model.key_stats, seed, warm)

    store = VersionStore(output.out)
    store.prepare()
    parent = store.latest_name()
    key = checkpoint_key(labeled.checksum, vectors, source, split, init, model, setup.fit)
    checkpoints = Path(output.out) / CHECKPOINTS / key
    if output.resume and not list(checkpoints.glob("*/checkpoint.json")):
        log.warning("resume: no checkpoint for this table, these vectors and options in %s; starting at epoch 1",
                    checkpoints.parent)
    try:
        with timed(timings, "train_seconds"):
            trained = train_and_compare(roles, vocabs, aligned, prepared, setup, compare, warm, checkpoints,
                                        output.resume, on_epoch)
    except OSError as exc:
        raise CatvecError(f"writing checkpoints to {checkpoints} failed ({describe_os_error(exc)}); "
                          f"latest is unchanged") from None
    if blend_enabled(compare.blend, roles.task, trained.auto is not None, bool(aligned)):
        with timed(timings, "blend_seconds"):   # last: it gives the validation labels to the saved model
            prepared = blend_chosen(trained, roles, aligned, prepared)
    with store.staged() as (name, staging):
        manifest = {"kind": "finetune", "parent": parent, "params": dataclasses.asdict(cfg),
                    "input": {"table": labeled.name, "checksum": labeled.checksum, "vectors": sorted(vectors)},
                    "timings": timings}
        export_model(staging, name, manifest, labeled.name, roles, vocabs, aligned, prepared, trained)
        final = publish_version(store, name, staging, output.keep)
    shutil.rmtree(checkpoints, ignore_errors=True)
    metrics = json.loads((final / METRICS_FILE).read_text(encoding="utf-8"))
    best = main_metric(roles.task, trained.setup.fit.metric)
    log.info("finetune: version %s in %.1fs, best %s %s", name, time.perf_counter() - t0, best, metrics["best"][best])
    return FinetuneResult(version=name, path=final, metrics=metrics, alignment=alignment_json(aligned))


def train_and_compare(roles: Roles, vocabs: dict[str, Vocab], aligned: dict[str, Aligned], prepared: Prepared,
                      setup: Setup, compare: Compare, warm: WarmStart | None, checkpoints: Path, resume: bool = False,
                      on_epoch=None) -> Trained:
    """The main fit (or the --auto search, whose choice replaces `setup`), then with
    --compare the scratch run and the baselines, all on the same split."""
    from catvec.finetuning.auto import auto_enabled, search
    from catvec.finetuning.metrics import main_metric

    def train(mode: str, candidate: Setup, run_dir: str, label: str):
        report = (lambda e, t, info: on_epoch(label, e, t, info)) if on_epoch else None
        return train_model(mode, roles, vocabs, aligned, prepared, candidate, warm, checkpoints / run_dir, resume,
                           report)

    rows, mode, members = len(prepared.data.y[0]), setup.init.mode, []
    if aligned and auto_enabled(compare.auto, mode, rows):   # nothing to choose without vectors
        def candidate_fit(i: int, candidate: Setup):
            label = f"{candidate.init.mode} {'mlp' if candidate.model.hidden else 'linear'} #{i + 1}"
            fit = train(candidate.init.mode, candidate, f"auto-{i}", label)[0]
            if blend_enabled(compare.blend, roles.task, True, True):
                keep_member(members, fit, main_metric(roles.task, candidate.fit.metric))
            return fit

        chosen, main, auto = search(setup, main_metric(roles.task, setup.fit.metric), rows, prepared.data.n_classes,
                                    candidate_fit)
        trained = Trained(chosen, main, auto=auto)
    else:
        main, record = train(mode, setup, mode, mode)
        trained = Trained(setup, main, warm_record=record)
    if compare.compare and trained.setup.init.mode != "scratch":  # the baseline trains with the settings asked for
        trained.scratch = train("scratch", setup, "scratch", "scratch")[0]
    if compare.compare:
        trained.baselines, trained.notes = fit_baselines(roles, aligned, prepared, trained.setup.fit)
    trained.members = members
    return trained


def check_fit(cfg: FinetuneConfig) -> None:
    """The roles check a run starts with, as plain calls: a scheduled run (flows/finetune.py)
    calls it before its tasks, so vectors whose keys do not fit the table (a trigger from
    another OUT, say) end the run with one line, not a task's traceback. Costs one extra read
    of the table and the vectors; skipped with --warm-start (the previous model fills roles)."""
    if cfg.warm_start:
        return
    source, split, init = Table.of(cfg), Split.of(cfg), Setup.of(cfg).init
    wanted = uses_vectors(init.mode, Compare.of(cfg).compare)
    labeled = load_table.fn(source)
    assign_roles.fn(labeled, source, split, load_pretrained.fn(source, init, wanted), wanted)


def _check_out_is_not_vectors(out: str, table: Table) -> None:
    """Models and pretrained vectors must not share an OUT/latest."""
    resolved = Path(out).resolve()
    for directory in [table.vectors, *table.pretrained_map.values()]:
        vectors = Path(directory).resolve()
        if resolved == vectors or resolved in vectors.parents:
            raise CatvecError(f"out {out} holds the pretrained vectors {directory}; "
                              f"write models to another directory, e.g. --out models")

"""`--auto`: pick the head, the mode and the regularisation on validation.

With few labels a frozen linear head on unit-normalised vectors often beats an MLP that
memorises the training rows; with many labels fine-tuning and the MLP pay off. Rather than
one default for both, `--auto` trains a few candidates on the same split and keeps the one
with the best validation score on the main metric (`--metric`, else the task's own):

    linear head, frozen, full-batch L-BFGS, L2 (weight_decay) 1e-5 | 1e-4 | 1e-3, unit rows
    MLP (--hidden default 128,64), dropout 0.1 | 0.3, frozen | finetune, AdamW, unit rows |
        rows as trained (normalize none)
        (only from MLP_MIN_ROWS training rows, for classes MLP_MIN_PER_CLASS per class)

The MLP threshold is measured (docs/finetune.md): on MovieLens genres with about 20
training rows per class the MLPs' validation scores (best of up to 100 epochs on a
validation split of ~100 rows) were optimistic and the choice lost to the linear head on
the test rows; from about 40 per class the MLPs matched or beat it on test.

Every candidate but the MLPs with normalize none uses unit-normalised pretrained rows, and class-balanced loss when the
metric is macro_f1; the MLPs train up to 100 epochs with patience 20 and stop as any run
does (on --metric when one is named, else on the validation loss). A flag given explicitly (a value other
than its default) wins: that axis is not searched. `auto` (the default) searches only when
the training split has fewer than AUTO_MAX_ROWS rows; `on` always, `off` never; never
without a pretrained column or in scratch mode.

The candidates and the choice are recorded in metrics.json ("auto") and report.md.
"""

from __future__ import annotations

import logging

from catvec.finetuning.config import Model, Setup

log = logging.getLogger(__name__)

AUTO_MAX_ROWS = 20_000
MLP_MIN_ROWS = 500
MLP_MIN_PER_CLASS = 30
LINEAR_L2 = (1e-5, 1e-4, 1e-3)
# the MLPs also see the rows as trained: a vector's length carries how often its key occurred,
# which unit rows discard (MovieLens liked, docs/finetune.md "catvec or a GBM?")
MLP_NORMALIZE = ("unit", "none")
# the common settings of every candidate, unless given explicitly
COMMON = {"normalize": "unit", "epochs": 100, "patience": 20}
SEARCHED = ("hidden", "mode", "solver", "dropout", "weight_decay", "normalize", "epochs", "patience",
            "class_weight")


def auto_enabled(auto: str, mode: str, train_rows: int) -> bool:
    """Search or not (`auto`: on, off, or auto = small tables), never in scratch mode."""
    if auto == "auto":
        return train_rows < AUTO_MAX_ROWS and mode != "scratch"
    return auto == "on" and mode != "scratch"


def explicit(setup: Setup) -> set[str]:
    """The searched fields whose value differs from the default: these win."""
    defaults = Setup.defaults()
    return {name for name in SEARCHED if setup.value(name) != defaults.value(name)}


def mlp_allowed(train_rows: int, n_classes: int = 0) -> bool:
    """Enough training rows for the MLP candidates to be judged fairly on validation."""
    if n_classes:
        return train_rows >= MLP_MIN_PER_CLASS * n_classes
    return train_rows >= MLP_MIN_ROWS


def candidates(setup: Setup, train_rows: int = AUTO_MAX_ROWS, n_classes: int = 0) -> list[Setup]:
    """The setups to try, simplest first (a tie keeps the simpler one). Each differs from
    `setup` only in the searched fields that were not given explicitly.
    Example: candidates(Setup.of(FinetuneConfig(metric="macro_f1")), train_rows=400, n_classes=18)"""
    given = explicit(setup)
    default_hidden = Model().hidden
    grid = [{"hidden": "", "solver": "lbfgs", "mode": "frozen", "weight_decay": l2} for l2 in LINEAR_L2]
    if mlp_allowed(train_rows, n_classes) or "hidden" in given:
        grid += [{"hidden": default_hidden, "solver": "adam", "mode": mode, "dropout": dropout, "normalize": norm}
                 for norm in MLP_NORMALIZE for mode in ("frozen", "finetune") for dropout in (0.1, 0.3)]
    common = dict(COMMON)
    if setup.fit.metric == "macro_f1":
        common["class_weight"] = "balanced"
    out, seen = [], set()
    for head in grid:
        settings = {k: v for k, v in {**common, **head}.items() if k not in given}
        if "hidden" in given and setup.model.hidden.strip():
            settings["solver"] = "adam"           # an explicit MLP: L-BFGS trains linear heads only
        candidate = setup.replace(**settings)
        if candidate.fit.solver == "lbfgs" and candidate.init.mode != "frozen":
            continue
        key = tuple(candidate.value(name) for name in SEARCHED)
        if key not in seen:
            seen.add(key)
            out.append(candidate)
    return out


def describe(setup: Setup) -> dict:
    """The searched settings of one candidate, for metrics.json."""
    return {name: setup.value(name) for name in SEARCHED}


def search(setup: Setup, metric: str, train_rows: int, n_classes: int, train):
    """Fit every candidate with train(i, candidate) -> FitResult; keep the best on `metric`.
    -> (chosen Setup, its FitResult, the record for metrics.json)."""
    from catvec.finetuning.training import improves

    tried, best = [], None
    for i, candidate in enumerate(candidates(setup, train_rows, n_classes)):
        fit = train(i, candidate)
        row = next(r for r in fit.history if r["epoch"] == fit.best_epoch)
        tried.append({"settings": describe(candidate), "score": row[metric], "best_epoch": fit.best_epoch,
                      "val_loss": row["val_loss"], **(fit.test or {})})
        if best is None or improves(row[metric], best[2], metric):
            best = (candidate, fit, row[metric])
    log.info("auto: chose %s", describe(best[0]))
    return best[0], best[1], {"metric": metric, "chosen": describe(best[0]), "candidates": tried}

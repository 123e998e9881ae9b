"""Validation metrics per task (numpy only), the main metric, and a run's metrics.json.

    regression   rmse (main), mae              in the target's own units
    binary       log_loss, auc (main), accuracy
    multiclass   accuracy (main), macro_f1, log_loss

metrics.json (also read by the plots that draw training curves):

    {"task": "regression", "main_metric": "val_rmse", "mode": "finetune",
     "best_epoch": 7, "stopped_early": true, "resumed_from": 0,
     "best": {"epoch": 7, "train_loss": .., "val_loss": .., "val_rmse": .., "val_mae": ..},
     "history": [{"epoch": 1, "train_loss": .., "val_loss": .., "val_rmse": .., ...}, ...],
     "test": {"test_rmse": .., ...}        (only when a split column marks test rows),
     "scratch": {same keys, for the scratch baseline; only with --compare},
     "baselines": {"linear_probe": {"settings": {"l2": ..}, "best": {"val_loss": .., "val_rmse": ..}},
                   "knn": {"settings": {"k": ..}, "best": {...}}}       (--compare, pretrained columns),
     "comparison": {"metric": "test_rmse", "split": "test", "pretrained": .., "scratch": .., "better": "pretrained",
                    "baselines": {"linear_probe": {"value": .., "better": "pretrained"}, "knn": {..},
                                  "gbm_raw": {..}, "gbm_vectors": {..}}},
     "notes": ["..."]                     (what --compare could not run, e.g. no GBM library)}

"better" is "pretrained", the other run's name, "tie" (equal values) or "unknown" (a null).
The comparison reads the test split when a split column marks test rows ("split": "test",
metric test_<m>); otherwise validation ("split": "validation", metric val_<m>), the split
every run also chose its settings on, which favours the runs with the most choices.

A metric that cannot be computed (AUC on a validation split with one class) is null.
"""

from __future__ import annotations

import math

import numpy as np

MAIN_METRIC = {"regression": "rmse", "binary": "auc", "multiclass": "accuracy"}
HIGHER_IS_BETTER = {"rmse": False, "mae": False, "log_loss": False, "auc": True, "accuracy": True, "macro_f1": True}


def task_metrics(task: str, y_true: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """y_true: (n,) targets (regression: original units; binary 0/1; multiclass indices).
    output: regression predictions (n,), binary logits (n,), multiclass logits (n, k)."""
    if task == "regression":
        err = output.astype(np.float64) - y_true
        return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err)))}
    if task == "binary":
        p = 1.0 / (1.0 + np.exp(-output.astype(np.float64)))
        return {"log_loss": log_loss_binary(y_true, p), "auc": auc(y_true, p),
                "accuracy": float(np.mean((p >= 0.5) == (y_true >= 0.5)))}
    logits = output.astype(np.float64)
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))   # (n, k)
    pred = log_p.argmax(axis=1)
    y = y_true.astype(np.int64)
    return {"accuracy": float(np.mean(pred == y)), "macro_f1": macro_f1(y, pred, log_p.shape[1]),
            "log_loss": float(-np.mean(log_p[np.arange(len(y)), y]))}


def log_loss_binary(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by ranks (ties averaged); nan with a single class."""
    pos = y >= 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    # average rank within ties
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = start + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes present in y or pred."""
    scores = []
    for k in range(n_classes):
        tp = np.sum((pred == k) & (y == k))
        fp = np.sum((pred == k) & (y != k))
        fn = np.sum((pred != k) & (y == k))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def main_metric(task: str, metric: str = "") -> str:
    """The validation metric comparisons read: val_<metric> when one is named, else the
    task's main one (val_rmse, val_auc, val_accuracy)."""
    return "val_" + (metric or MAIN_METRIC[task])


def verdict(ours, theirs, name: str, other: str) -> str:
    """"pretrained", `other`, "tie" or "unknown" (a null) for two values of metric `name`."""
    if ours is None or theirs is None:
        return "unknown"
    if ours == theirs:
        return "tie"
    return "pretrained" if (ours > theirs) == HIGHER_IS_BETTER[name.split("_", 1)[1]] else other


# ---- metrics.json -------------------------------------------------------------------

def run_metrics(fit, task: str, mode: str, metric: str = "") -> dict:
    history = [{k: _finite(v) for k, v in row.items()} for row in fit.history]
    best = next(row for row in history if row["epoch"] == fit.best_epoch)
    out = {"task": task, "main_metric": main_metric(task, metric), "mode": mode, "best_epoch": fit.best_epoch,
           "stopped_early": fit.stopped_early, "resumed_from": fit.resumed_from,
           "best": dict(best), "history": history}
    if fit.test:
        out["test"] = {k: _finite(v) for k, v in fit.test.items()}
    return out


def _finite(value):
    """NaN / inf (e.g. AUC of a validation split with one class) -> null: metrics.json stays strict JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def metrics_json(fit, scratch, task: str, metric: str = "", baselines=()) -> dict:
    """The metrics of the main run, plus the scratch run, the baselines (BaselineResult)
    and the comparisons when given."""
    modes = [c["mode"] for c in fit.model.spec["columns"]]
    metrics = run_metrics(fit, task, _main_mode(modes), metric)
    # verdicts read the test split when there is one: validation picked each run's settings
    on_test = "test" in metrics
    name = ("test_" + metrics["main_metric"].removeprefix("val_")) if on_test else metrics["main_metric"]

    def value(run: dict):
        return run.get("test", {}).get(name) if on_test else run["best"].get(name)

    ours = value(metrics)
    split = {"split": "test" if on_test else "validation"}
    if scratch is not None:
        metrics["scratch"] = run_metrics(scratch, task, "scratch", metric)
        theirs = value(metrics["scratch"])
        metrics["comparison"] = {"metric": name, **split, "pretrained": ours, "scratch": theirs,
                                 "better": verdict(ours, theirs, name, "scratch")}
    if baselines:
        metrics["baselines"] = {b.name: {"settings": b.settings, "best": {k: _finite(v) for k, v in b.metrics.items()}}
                                for b in baselines}
        vs = {b.name: {"value": _finite(b.metrics.get(name)),
                       "better": verdict(ours, _finite(b.metrics.get(name)), name, b.name)} for b in baselines}
        metrics.setdefault("comparison", {"metric": name, **split, "pretrained": ours})["baselines"] = vs
    return metrics


def _main_mode(modes: list[str]) -> str:
    non_scratch = [m for m in modes if m != "scratch"]
    return non_scratch[0] if non_scratch else "scratch"

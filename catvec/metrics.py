"""Validation metrics per task (numpy only), and which one is the main metric.

    regression   rmse (main), mae              in the target's own units
    binary       log_loss, auc (main), accuracy
    multiclass   accuracy (main), macro_f1, log_loss
"""

from __future__ import annotations

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


def is_better(metric: str, new: float, old: float | None) -> bool:
    if old is None or np.isnan(old):
        return not np.isnan(new)
    return new > old if HIGHER_IS_BETTER.get(metric, False) else new < old

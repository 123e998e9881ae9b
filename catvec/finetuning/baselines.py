"""Baselines on the frozen pretrained vectors, for `--compare`: a linear probe and kNN.

Both read only what pretraining learned: each pretrained column's vector, unit-normalised,
concatenated (the linear probe also gets the continuous features). If a fine-tuned model
cannot beat them, the vectors alone carry the signal and the MLP adds nothing.

    linear_probe  one Linear layer (multinomial logistic / logistic / least squares) on the
                  features, full batch L-BFGS; the L2 penalty is picked on validation
    knn           the k labeled training rows nearest by cosine vote (classes, weighted by
                  similarity) or average (regression); k is picked on validation

Each returns a `BaselineResult` whose metrics have the same names as a fit's history rows
(val_loss, val_<metric>; test_<metric> when the table has test rows).
Example: result = linear_probe(features(aligned, roles.cat_cols, data.x_cat), data, "val_accuracy")
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catvec.base.scoring import unit_rows
import torch

from catvec.finetuning.training import improves, loss_fn, output_metrics

PROBE_L2 = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
KNN_K = (1, 5, 10, 25)


@dataclass
class BaselineResult:
    name: str
    settings: dict           # what validation picked: {"l2": ..} or {"k": ..}
    metrics: dict            # {"val_loss": .., "val_accuracy": .., ..., "test_accuracy": ..}


def features(aligned: dict, cat_cols: list[str], x_cat: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """Per split: unit pretrained vectors of each pretrained column, concatenated and scaled
    so each row has length 1: float32 (n, sum of dims).
    aligned: pretrained column -> its Aligned rows; x_cat: (n, n_cat) vocab rows per split."""
    pretrained = [(cat_cols.index(c), unit_rows(a.matrix)) for c, a in aligned.items()]
    scale = np.float32(1.0 / np.sqrt(max(len(pretrained), 1)))
    return [np.concatenate([m[x[:, j]] for j, m in pretrained], axis=1) * scale for x in x_cat]


def linear_probe(feats: list[np.ndarray], data, metric: str) -> BaselineResult:
    """A linear head on the frozen features (+ continuous columns); L2 picked by `metric`.
    Trained with the data's class weights, if any."""
    class_weights = None if data.class_weights is None else torch.from_numpy(data.class_weights)
    x = [torch.from_numpy(np.concatenate([f, c], axis=1)) for f, c in zip(feats, data.x_cont)]
    out_dim = data.n_classes if data.task == "multiclass" else 1
    best = None
    for l2 in PROBE_L2:
        head = _fit_linear(x[0], torch.from_numpy(data.y[0]), data.task, out_dim, l2, class_weights)
        with torch.no_grad():
            outputs = [head(part).numpy() for part in x]
        metrics = split_metrics(data, outputs)
        if best is None or improves(metrics[metric], best.metrics[metric], metric):
            best = BaselineResult("linear_probe", {"l2": l2}, metrics)
    return best


def knn(feats: list[np.ndarray], data, metric: str) -> BaselineResult:
    """Nearest labeled training rows by cosine; k picked by `metric`."""
    best = None
    train, y = feats[0], data.y[0]
    sims = [part @ train.T for part in feats]                       # (n_split, n_train) each
    for k in KNN_K:
        if k > len(train) and k != KNN_K[0]:
            break
        outputs = [_knn_output(s, y, k, data) for s in sims]
        metrics = split_metrics(data, outputs)
        if best is None or improves(metrics[metric], best.metrics[metric], metric):
            best = BaselineResult("knn", {"k": k}, metrics)
    return best


def split_metrics(data, outputs: list[np.ndarray]) -> dict:
    """Model-unit outputs per split -> {"val_loss", "val_<m>", "test_<m>"} like a fit's rows."""
    metrics = {}
    for split, prefix in ((1, "val_"), (2, "test_")):
        if split < len(outputs) and len(data.y[split]):
            found = output_metrics(data, outputs[split], split)
            metrics.update({prefix + k.removeprefix("val_"): v for k, v in found.items()})
    return metrics


def _fit_linear(x: torch.Tensor, y: torch.Tensor, task: str, out_dim: int, l2: float, class_weights):
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], out_dim)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(task, head(x), y, class_weights) + l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head


def _knn_output(sims: np.ndarray, y: np.ndarray, k: int, data) -> np.ndarray:
    """(n, n_train) similarities -> model-unit outputs (n, out_dim)."""
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]                 # (n, k)
    weight = np.maximum(np.take_along_axis(sims, top, axis=1), 0) + 1e-6   # (n, k)
    labels = y[top]                                                    # (n, k)
    if data.task == "regression":
        return ((weight * labels).sum(axis=1) / weight.sum(axis=1))[:, None].astype(np.float32)
    votes = np.zeros((len(sims), data.n_classes))
    np.add.at(votes, (np.arange(len(sims))[:, None], labels.astype(np.int64)), weight)
    p = (votes + 0.01) / (votes + 0.01).sum(axis=1, keepdims=True)     # smoothed class shares
    if data.task == "binary":
        return np.log(p[:, 1:] / p[:, :1]).astype(np.float32)          # logit of class 1
    return np.log(p).astype(np.float32)

"""The fit loop: mini-batches, validation metrics per epoch, early stopping, a checkpoint
per epoch and resume.

Every epoch reseeds the shuffling and dropout from (seed, epoch), so a run resumed from
the checkpoint of epoch k continues exactly as the uninterrupted run would have. The
checkpoint (model, optimizer state, history, best state) is replaced atomically after
each epoch, as safetensors + JSON (catvec.finetuning.checkpoint): nothing is unpickled.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from catvec.finetuning.checkpoint import load_checkpoint, save_checkpoint
from catvec.finetuning.device import model_device
from catvec.finetuning.embedding import build_optimizers
from catvec.base.faults import fault_point
from catvec.finetuning.config import Fit
from catvec.finetuning.metrics import task_metrics
from catvec.finetuning.model import TabularEmbeddingModel

log = logging.getLogger(__name__)



@dataclass
class TrainData:
    """Arrays for one split each (train, val[, test]); y is in model units (regression:
    standardised). Test rows, when a split column marks some, are never trained or
    validated on: they are scored once, with the best model."""

    task: str
    x_cat: tuple[np.ndarray, ...]             # (n, n_cat) int64 for train, val[, test]
    x_cont: tuple[np.ndarray, ...]            # (n, n_cont) float32
    y: tuple[np.ndarray, ...]                 # (n,) float32 or int64
    y_mean: float = 0.0                       # regression: model units -> target units
    y_std: float = 1.0
    n_classes: int = 0                        # binary / multiclass: number of classes
    class_weights: np.ndarray | None = None   # (n_classes,) float32 loss weights, or None

    @property
    def has_test(self) -> bool:
        return len(self.y) > 2 and len(self.y[2]) > 0


def with_class_weights(data: TrainData, class_weight: str) -> TrainData:
    """The data with the loss weights `class_weight` asks for: balanced (classes) or none."""
    import dataclasses

    from catvec.finetuning.labeled import balanced_weights

    balanced = class_weight == "balanced" and data.task != "regression"
    return dataclasses.replace(data, class_weights=balanced_weights(data.y[0], data.n_classes) if balanced else None)


@dataclass
class FitResult:
    model: TabularEmbeddingModel       # with the best epoch's weights
    history: list[dict]
    best_epoch: int
    stopped_early: bool
    resumed_from: int = 0
    test: dict | None = None           # test_<metric> of the best model, when there are test rows


def fit(model: TabularEmbeddingModel, data: TrainData, settings: Fit, checkpoint_dir=None,
        resume: bool = False, on_epoch=None, device=None) -> FitResult:
    """Train with early stopping on validation loss (or on settings.metric when one is named);
    checkpoint after every epoch.

    settings (catvec.finetuning.config.Fit): epochs, batch_size, lr, embedding_lr,
    weight_decay, emb_l2, patience, unfreeze_after, sparse, metric and seed are read from it.
    on_epoch(epoch, total, info) is called after each epoch with that epoch's metrics.
    Example: result = fit(model, data, Fit(epochs=20), "out/.checkpoints/abc")
    """
    s = settings
    model.to(device or "cpu")
    optimizers = build_optimizers(model, s.lr, s.embedding_lr, s.weight_decay, s.sparse)
    history, best, bad, start, unfrozen = [], None, 0, 0, False
    path = Path(checkpoint_dir) if checkpoint_dir else None
    state = load_checkpoint(path) if resume and path is not None else None
    if resume and state is None:
        log.info("resume: no checkpoint for these inputs and options%s; starting at epoch 1",
                 f" in {path}" if path else "")
    elif resume:
        if state.get("unfrozen"):
            unfrozen = model.unfreeze()
            optimizers = build_optimizers(model, s.lr, s.embedding_lr, s.weight_decay, s.sparse)
        model.load_state_dict(state["model"])
        for opt, opt_state in zip(optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        history, best, bad, start = state["history"], state["best"], state["bad"], state["epoch"]
        log.info("resuming after epoch %d from %s", start, path)
    stopped = bool(history) and bad >= s.patience
    watch = stopping_metric(s.metric)
    for epoch in range(start + 1, s.epochs + 1):
        if stopped:
            break
        if s.unfreeze_after and epoch == s.unfreeze_after + 1 and model.unfreeze():
            unfrozen = True
            optimizers = build_optimizers(model, s.lr, s.embedding_lr, s.weight_decay, s.sparse)
            log.info("epoch %d: embeddings unfrozen", epoch)
        row = epoch_row(model, data, epoch, _train_epoch(model, data, s, optimizers, epoch))
        history.append(row)
        if best is None or improves(row[watch], best[watch], watch):
            best = {"epoch": epoch, watch: row[watch], "spec": copy.deepcopy(model.spec),
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            bad = 0
        else:
            bad += 1
        stopped = bad >= s.patience and epoch < s.epochs
        if path is not None:
            save_checkpoint(path, tag=f"epoch{epoch}", state={"epoch": epoch, "model": model.state_dict(),
                                    "optimizers": [o.state_dict() for o in optimizers],
                                    "history": history, "best": best, "bad": bad, "unfrozen": unfrozen})
        fault_point("finetune-epoch")
        if on_epoch is not None:
            on_epoch(epoch, s.epochs, row)
    best_model = TabularEmbeddingModel.from_state(best["spec"], best["state"])
    return FitResult(model=best_model, history=history, best_epoch=best["epoch"],
                     stopped_early=stopped, resumed_from=start)


def fit_full_batch(model: TabularEmbeddingModel, data: TrainData, settings: Fit, on_epoch=None,
                   device=None) -> FitResult:
    """solver lbfgs: every trainable parameter by full-batch L-BFGS to convergence, with
    settings.weight_decay as the L2 penalty on the head's weights (a linear probe that is a
    model); settings.seed seeds it. One "epoch" in the history; no checkpoints (it takes seconds).
    Example: fit_full_batch(model, data, Fit(solver="lbfgs"))"""
    torch.manual_seed(settings.seed)
    device = device or torch.device("cpu")
    model.to(device)
    x_cat, x_cont, y = (torch.from_numpy(a[0]).to(device) for a in (data.x_cat, data.x_cont, data.y))
    weights = None if data.class_weights is None else torch.from_numpy(data.class_weights).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=200, line_search_fn="strong_wolfe")
    model.eval()  # a linear head has no dropout or batch norm to train

    def closure():
        opt.zero_grad()
        loss = loss_fn(data.task, model(x_cat, x_cont), y, weights) + settings.weight_decay * model.head.weight.pow(2).sum()
        loss.backward()
        return loss

    row = epoch_row(model, data, 1, float(opt.step(closure).detach()))
    if on_epoch is not None:
        on_epoch(1, 1, row)
    return FitResult(model=model.cpu(), history=[row], best_epoch=1, stopped_early=False)


def score_as_is(model: TabularEmbeddingModel, data: TrainData, on_epoch=None, device=None) -> FitResult:
    """epochs 0: no training, the model scored as it is (a warm start with other vectors
    swapped in). One history row, epoch 0, whose train_loss is the training split's loss."""
    model.to(device or "cpu")
    model.eval()
    row = epoch_row(model, data, 0, evaluate(model, data, split=0)["val_loss"])
    if on_epoch is not None:
        on_epoch(0, 0, row)
    return FitResult(model=model.cpu(), history=[row], best_epoch=0, stopped_early=False)


def epoch_row(model, data: TrainData, epoch: int, train_loss: float) -> dict:
    """One history row: the training loss, train-split metrics (eval mode, for the training
    curves) and the validation metrics."""
    on_train = {"train_" + k.removeprefix("val_"): v for k, v in evaluate(model, data, split=0).items()
                if k != "val_loss"}
    return {"epoch": epoch, "train_loss": train_loss, **on_train, **evaluate(model, data, split=1)}


def stopping_metric(metric: str) -> str:
    """The history key early stopping reads: val_loss, or val_<metric> when one is named."""
    return f"val_{metric}" if metric else "val_loss"


def improves(new, old, key: str) -> bool:
    """Is `new` better than `old` for the metric named `key` (val_loss, val_auc, ...)? NaN never is."""
    from catvec.finetuning.metrics import HIGHER_IS_BETTER

    if new is None or (isinstance(new, float) and np.isnan(new)):
        return False
    if old is None or (isinstance(old, float) and np.isnan(old)):
        return True
    if HIGHER_IS_BETTER.get(key.removeprefix("val_"), False):
        return new > old + 1e-12
    return new < old - 1e-12


def _train_epoch(model, data: TrainData, s: Fit, optimizers, epoch: int) -> float:
    model.train()
    torch.manual_seed(s.seed * 100_003 + epoch)                      # dropout of this epoch
    gen = torch.Generator().manual_seed(s.seed * 100_003 + epoch)
    device = model_device(model)
    x_cat, x_cont, y = (torch.from_numpy(a[0]).to(device) for a in (data.x_cat, data.x_cont, data.y))
    n = len(y)
    order = torch.randperm(n, generator=gen)                          # (n,)
    total, seen = 0.0, 0
    weights = None if data.class_weights is None else torch.from_numpy(data.class_weights).to(device)
    for begin in range(0, n, s.batch_size):
        idx = order[begin:begin + s.batch_size].to(device)            # (batch,)
        if len(idx) < 2 and seen:  # BatchNorm cannot train on a batch of one
            continue
        out = model(x_cat[idx], x_cont[idx])                          # (batch, out_dim)
        loss = loss_fn(data.task, out, y[idx], weights)
        total_loss = loss + s.emb_l2 * model.last_emb_l2 if s.emb_l2 else loss
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        total_loss.backward()
        for opt in optimizers:
            opt.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


def loss_fn(task: str, out: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """out (batch, out_dim); y (batch,) -> scalar loss for the task.
    weights (n_classes,): per-class loss weights (class-balanced training), or None."""
    if task == "regression":
        return F.mse_loss(out[:, 0], y)
    if task == "binary":
        if weights is None:
            return F.binary_cross_entropy_with_logits(out[:, 0], y)
        per_row = weights[y.long()]                                  # (batch,)
        return (F.binary_cross_entropy_with_logits(out[:, 0], y, reduction="none") * per_row).sum() / per_row.sum()
    return F.cross_entropy(out, y, weight=weights)


@torch.no_grad()
def predict_output(model, x_cat: np.ndarray, x_cont: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Raw model output in eval mode, on the model's device: (n, out_dim) float32 numpy."""
    model.eval()
    device = model_device(model)
    parts = [model(torch.from_numpy(x_cat[i:i + batch_size]).to(device),
                   torch.from_numpy(x_cont[i:i + batch_size]).to(device)).cpu()
             for i in range(0, len(x_cat), batch_size)]
    if not parts:
        return np.zeros((0, model.spec["out_dim"]), dtype=np.float32)
    return torch.cat(parts).numpy()


def evaluate(model, data: TrainData, split: int = 1) -> dict:
    """val_loss (model units) and the task metrics (target units) on one split."""
    return output_metrics(data, predict_output(model, data.x_cat[split], data.x_cont[split]), split)


def output_metrics(data: TrainData, out: np.ndarray, split: int = 1) -> dict:
    """Model output (n, out_dim) of one split -> val_loss and val_<metric> (target units)."""
    y = data.y[split]
    weights = None if data.class_weights is None else torch.from_numpy(data.class_weights)
    loss = float(loss_fn(data.task, torch.from_numpy(out), torch.from_numpy(y), weights))  # the training objective
    if data.task == "regression":
        metrics = task_metrics("regression", y * data.y_std + data.y_mean, out[:, 0] * data.y_std + data.y_mean)
    else:
        metrics = task_metrics(data.task, y, out[:, 0] if data.task == "binary" else out)
    return {"val_loss": loss, **{f"val_{k}": v for k, v in metrics.items()}}

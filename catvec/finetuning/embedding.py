"""`PretrainedEmbedding`: an embedding layer started from aligned vectors, and its
parameter groups.

Modes (what happens to which rows during training):

    frozen    every row is a buffer: never changes, no optimizer state
    finetune  every row trainable, in the "embedding" group with `embedding_lr`
    partial   rows with a pretrained vector are a buffer; the others (OOV and <unk>) are
              a small trainable table in the "embedding_new" group with the model's lr
    scratch   random init, every row trainable with the model's lr (the baseline)

Frozen rows are buffers, not parameters, so no optimizer can touch them: they stay
bit-identical under AdamW weight decay and momentum. `unfreeze()` turns a frozen or
partial layer into a finetune one (freeze-then-finetune); rebuild the optimizer after it.
`sparse=True` gives sparse gradients for the trainable tables (use SparseAdam for them).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from catvec.finetuning.config import FINETUNE_MODES

MODES = FINETUNE_MODES


class PretrainedEmbedding(nn.Module):
    """Lookup (batch, ...) int64 -> (batch, ..., dim) float32.

    Example: PretrainedEmbedding(matrix, pretrained_mask=hits, mode="partial")
    """

    def __init__(self, matrix, pretrained_mask=None, mode: str = "finetune", sparse: bool = False,
                 seed: int = 0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        weight = torch.as_tensor(np.asarray(matrix, dtype=np.float32)).clone()    # (n, dim)
        n, dim = weight.shape
        mask = torch.zeros(n, dtype=torch.bool) if pretrained_mask is None else \
            torch.as_tensor(np.asarray(pretrained_mask, dtype=bool)).clone()       # (n,)
        self.num_embeddings, self.embedding_dim = n, dim
        self.mode, self.sparse = mode, sparse
        self.register_buffer("pretrained_mask", mask)
        if mode == "scratch":
            gen = torch.Generator().manual_seed(seed)
            weight = torch.randn(n, dim, generator=gen) / math.sqrt(dim)
        if mode in ("scratch", "finetune"):
            self.weight = nn.Parameter(weight)
            self.role = "embedding_new" if mode == "scratch" else "embedding"
        elif mode == "frozen":
            self.register_buffer("fixed", weight)
            self.role = None
        else:  # partial: pretrained rows fixed, the rest trainable
            new_rows = torch.nonzero(~mask).flatten()                              # (n_new,)
            if new_rows.numel() == 0:
                raise ValueError("partial mode needs at least one row without a pretrained vector (<unk>)")
            local = torch.zeros(n, dtype=torch.int64)                              # (n,)
            local[new_rows] = torch.arange(new_rows.numel())
            self.register_buffer("fixed", weight)
            self.register_buffer("local_index", local)
            self.new_rows = nn.Parameter(weight[new_rows].clone())                 # (n_new, dim)
            self.role = "embedding_new"

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        if self.mode in ("scratch", "finetune"):
            return F.embedding(index, self.weight, sparse=self.sparse)            # (..., dim)
        if self.mode == "frozen":
            return F.embedding(index, self.fixed)
        fixed = F.embedding(index, self.fixed)                                     # (..., dim)
        new = F.embedding(self.local_index[index], self.new_rows, sparse=self.sparse)  # (..., dim)
        trainable = (~self.pretrained_mask[index]).unsqueeze(-1)                   # (..., 1)
        return torch.where(trainable, new, fixed)

    def full_weight(self) -> torch.Tensor:
        """Every row as it is now: (num_embeddings, dim), detached."""
        if self.mode in ("scratch", "finetune"):
            return self.weight.detach().clone()
        weight = self.fixed.clone()
        if self.mode == "partial":
            weight[~self.pretrained_mask] = self.new_rows.detach()
        return weight

    def load_rows(self, matrix) -> None:
        """Set every row (num_embeddings, dim) in place, whatever the mode (a warm start)."""
        rows = torch.as_tensor(np.asarray(matrix, dtype=np.float32))              # (n, dim)
        if tuple(rows.shape) != (self.num_embeddings, self.embedding_dim):
            raise ValueError(f"expected rows of shape {(self.num_embeddings, self.embedding_dim)}, "
                             f"got {tuple(rows.shape)}")
        with torch.no_grad():
            if self.mode in ("scratch", "finetune"):
                self.weight.copy_(rows)
                return
            self.fixed.copy_(rows)
            if self.mode == "partial":
                self.new_rows.copy_(rows[~self.pretrained_mask])

    def unfreeze(self) -> bool:
        """frozen / partial -> finetune (all rows trainable). True if anything changed."""
        if self.mode not in ("frozen", "partial"):
            return False
        weight = self.full_weight()
        for name in ("fixed", "local_index"):
            if name in self._buffers:
                del self._buffers[name]
        if "new_rows" in self._parameters:
            del self._parameters["new_rows"]
        self.weight = nn.Parameter(weight)
        self.mode, self.role = "finetune", "embedding"
        return True

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode}, sparse={self.sparse}"


def param_groups(model: nn.Module, lr: float = 1e-3, embedding_lr: float = 1e-4,
                 weight_decay: float | None = None) -> list[dict]:
    """Every trainable parameter in exactly one group (checked):

    decay          weights of Linear layers: lr, weight_decay (default: catvec finetune's
                   --weight-decay default, 1e-4)
    no_decay       biases and norm parameters: lr, no decay
    embedding      pretrained-initialised embedding rows: embedding_lr, no decay
    embedding_new  randomly initialised embedding rows (scratch, partial): lr, no decay

    Empty groups are left out. Example: torch.optim.AdamW(param_groups(model, 1e-2, 1e-3, 1e-4))
    """
    if weight_decay is None:
        from catvec.finetuning.config import Fit

        weight_decay = Fit().weight_decay
    names = {"decay": [], "no_decay": [], "embedding": [], "embedding_new": []}
    for module_name, module in model.named_modules():
        for pname, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            full = f"{module_name}.{pname}" if module_name else pname
            if isinstance(module, PretrainedEmbedding):
                names[module.role].append(full)
            elif isinstance(module, nn.Linear) and pname == "weight":
                names["decay"].append(full)
            else:
                names["no_decay"].append(full)
    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    placed = [n for group in names.values() for n in group]
    assert len(placed) == len(set(placed)), "a parameter landed in two groups"
    assert set(placed) == trainable, f"parameters without a group: {sorted(trainable - set(placed))}"
    settings = {"decay": (lr, weight_decay), "no_decay": (lr, 0.0),
                "embedding": (embedding_lr, 0.0), "embedding_new": (lr, 0.0)}
    return [{"name": name, "params": [params[n] for n in group], "param_names": group,
             "lr": settings[name][0], "weight_decay": settings[name][1]}
            for name, group in names.items() if group]


def build_optimizers(model: nn.Module, lr: float, embedding_lr: float, weight_decay: float,
                     sparse: bool = False) -> list:
    """AdamW over the groups; with sparse=True the embedding groups go to SparseAdam."""
    groups = param_groups(model, lr, embedding_lr, weight_decay)
    if not sparse:
        return [torch.optim.AdamW(groups)]
    dense = [g for g in groups if not g["name"].startswith("embedding")]
    emb = [{k: v for k, v in g.items() if k != "weight_decay"} for g in groups if g["name"].startswith("embedding")]
    optimizers = [torch.optim.AdamW(dense)] if dense else []
    if emb:
        optimizers.append(torch.optim.SparseAdam(emb))
    return optimizers

"""`TabularEmbeddingModel`: entity embeddings + continuous features -> MLP -> output.

    x_cat (batch, n_cat) int64, x_cont (batch, n_cont) float32
      -> one embedding per categorical column, embedding dropout
      -> [optional] pairwise products of same-size embeddings
      -> concat with x_cont -> [Linear -> BatchNorm -> ReLU -> Dropout] * len(hidden)
      -> Linear -> (batch, out_dim)

The model is described by a JSON-able spec (`model.spec`), so a model directory is
rebuilt with `TabularEmbeddingModel.from_state(spec, state)` from its safetensors state.
Embedding size of a column without pretrained vectors: `embedding_size(n, rule)`.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from catvec.finetuning.config import SIZE_RULES
from catvec.finetuning.embedding import PretrainedEmbedding


def embedding_size(n: int, rule: str = "fastai") -> int:
    """Embedding size for a column with n categories (<unk> included).

    fastai: min(600, round(1.6 * n ** 0.56));  half: min(50, ceil(n / 2)).
    Example: embedding_size(200) == 31; embedding_size(200, "half") == 50
    """
    if rule == "fastai":
        return max(1, min(600, round(1.6 * n ** 0.56)))
    if rule == "half":
        return max(1, min(50, math.ceil(n / 2)))
    raise ValueError(f"unknown embedding size rule {rule!r}; use one of {SIZE_RULES}")


class TabularEmbeddingModel(nn.Module):
    """spec keys: columns [{name, num, dim, mode}], n_cont, out_dim, hidden, dropout,
    emb_dropout, interactions, sparse. Embedding weights come from `matrices` (name ->
    (num, dim) array) and `masks` (name -> bool (num,) pretrained rows), else random."""

    def __init__(self, spec: dict, matrices: dict | None = None, masks: dict | None = None, seed: int = 0):
        super().__init__()
        self.spec = copy.deepcopy(spec)
        matrices, masks = matrices or {}, masks or {}
        self.embeddings = nn.ModuleDict()
        for i, col in enumerate(spec["columns"]):
            matrix = matrices.get(col["name"])
            if matrix is None:
                gen = torch.Generator().manual_seed(seed + 7919 * (i + 1))
                matrix = (torch.randn(col["num"], col["dim"], generator=gen) / math.sqrt(col["dim"])).numpy()
            self.embeddings[_safe(col["name"])] = PretrainedEmbedding(
                matrix, masks.get(col["name"]), mode=col["mode"], sparse=spec.get("sparse", False), seed=seed + i)
        self.emb_dropout = nn.Dropout(spec.get("emb_dropout", 0.0))
        self.pairs = _pairs(spec["columns"]) if spec.get("interactions") else []
        width = sum(c["dim"] for c in spec["columns"]) + sum(spec["columns"][a]["dim"] for a, _ in self.pairs)
        width += spec["n_cont"]
        blocks = []
        for size in spec.get("hidden", []):
            blocks += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU(), nn.Dropout(spec.get("dropout", 0.0))]
            width = size
        self.mlp = nn.Sequential(*blocks)
        self.head = nn.Linear(width, spec["out_dim"])
        self.last_emb_l2 = torch.zeros(())

    @classmethod
    def from_state(cls, spec: dict, state: dict) -> "TabularEmbeddingModel":
        """Rebuild a model from its spec and state dict (which holds the pretrained masks)."""
        masks = {c["name"]: state[f"embeddings.{_safe(c['name'])}.pretrained_mask"].numpy()
                 for c in spec["columns"]}
        model = cls(spec, masks=masks)
        model.load_state_dict(state)
        return model

    @staticmethod
    def state_shapes(spec: dict) -> dict[str, tuple]:
        """The state dict's tensor names and shapes this spec builds, computed without building
        anything (a partial column's new_rows: (None, dim), its count is the mask's). Lets a
        loader compare a spec read from a file with the weights before allocating."""
        shapes: dict[str, tuple] = {}
        for col in spec["columns"]:
            prefix, num, dim = f"embeddings.{_safe(col['name'])}.", col["num"], col["dim"]
            shapes[prefix + "pretrained_mask"] = (num,)
            if col["mode"] in ("scratch", "finetune"):
                shapes[prefix + "weight"] = (num, dim)
            else:
                shapes[prefix + "fixed"] = (num, dim)
            if col["mode"] == "partial":
                shapes[prefix + "local_index"] = (num,)
                shapes[prefix + "new_rows"] = (None, dim)
        pairs = _pairs(spec["columns"]) if spec.get("interactions") else []
        width = sum(c["dim"] for c in spec["columns"]) + sum(spec["columns"][a]["dim"] for a, _ in pairs) + spec["n_cont"]
        for i, size in enumerate(spec.get("hidden", [])):
            linear, norm = f"mlp.{4 * i}.", f"mlp.{4 * i + 1}."
            shapes.update({linear + "weight": (size, width), linear + "bias": (size,)})
            shapes.update({norm + name: (size,) for name in ("weight", "bias", "running_mean", "running_var")})
            shapes[norm + "num_batches_tracked"] = ()
            width = size
        shapes.update({"head.weight": (spec["out_dim"], width), "head.bias": (spec["out_dim"],)})
        return shapes

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor) -> torch.Tensor:
        parts = []
        l2 = x_cont.new_zeros(())
        for j, layer in enumerate(self.embeddings.values()):
            e = layer(x_cat[:, j])                                  # (batch,) -> (batch, dim_j)
            l2 = l2 + e.pow(2).sum(dim=1).mean()
            parts.append(e)
        self.last_emb_l2 = l2                                       # L2 of the rows used in this batch
        parts += [parts[a] * parts[b] for a, b in self.pairs]       # (batch, dim_a) each
        h = torch.cat([self.emb_dropout(torch.cat(parts, dim=1)), x_cont], dim=1) if parts else x_cont
        return self.head(self.mlp(h))                               # (batch, out_dim)

    def embedding_layers(self) -> dict[str, PretrainedEmbedding]:
        return {col["name"]: self.embeddings[_safe(col["name"])] for col in self.spec["columns"]}

    def unfreeze(self) -> bool:
        changed = [layer.unfreeze() for layer in self.embeddings.values()]
        for col, layer in zip(self.spec["columns"], self.embeddings.values()):
            col["mode"] = layer.mode
        return any(changed)


def _pairs(columns: list[dict]) -> list[tuple[int, int]]:
    return [(a, b) for a in range(len(columns)) for b in range(a + 1, len(columns))
            if columns[a]["dim"] == columns[b]["dim"]]


def _safe(name: str) -> str:
    """ModuleDict keys cannot contain dots; column names can."""
    return "c_" + "".join(ch if ch.isalnum() or ch == "_" else f"_{ord(ch):x}_" for ch in name)

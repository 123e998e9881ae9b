"""Your own PyTorch model, started from catvec's pretrained vectors.

Predicts `spend` in the bundled labeled table from the item alone. The embedding layer
comes from `catvec.embedding` (pretrained rows, `<unk>` at row 0, OOV rows initialised as
`catvec finetune` does), and the optimizer's groups from `catvec.param_groups` (the
embedding at its own, lower learning rate). A fifth of the items is held out, so the
validation error measures items the model never saw a label for.

    make demo                          # or: catvec pretrain --out artifacts
    python examples/own_model.py       # --vectors DIR --table CSV --epochs N --mode MODE
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

import catvec

REPO = Path(__file__).resolve().parent.parent


class SpendModel(nn.Module):
    """item -> embedding -> small MLP -> spend (standardised)."""

    def __init__(self, emb: nn.Module):
        super().__init__()
        self.emb = emb
        self.head = nn.Sequential(nn.Linear(emb.embedding_dim, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(items)).squeeze(-1)              # (batch,) -> (batch,)


def run(vectors: str, table_path: str, epochs: int, mode: str) -> dict:
    if not Path(vectors).exists():
        raise catvec.CatvecError(f"no vectors at {vectors}; run `make demo` (or `catvec pretrain --out "
                                 f"artifacts`) first, or pass --vectors DIR")
    table = pl.read_csv(table_path, schema_overrides={"item_id": pl.Utf8})
    keys = sorted(set(table["item_id"].to_list()))                # your own vocabulary
    emb = catvec.embedding(vectors, keys=keys, mode=mode)
    start = emb.full_weight()
    items = emb.encode(table["item_id"])                          # (n,) rows, 0 = <unk>
    spend = torch.tensor(table["spend"].to_numpy(), dtype=torch.float32)
    held_out = set(np.random.default_rng(0).permutation(keys)[: len(keys) // 5])
    val = torch.tensor([k in held_out for k in table["item_id"].to_list()])
    mean, std = spend[~val].mean(), spend[~val].std()
    target = (spend - mean) / std
    torch.manual_seed(0)
    model = SpendModel(emb)
    opt = torch.optim.AdamW(catvec.param_groups(model, lr=1e-2, embedding_lr=1e-3, weight_decay=1e-4))
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(int((~val).sum())).split(64):
            idx = torch.nonzero(~val).flatten()[batch]
            loss = nn.functional.mse_loss(model(items[idx]), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        rmse = float(((model(items[val]) * std + mean - spend[val]) ** 2).mean().sqrt())
    baseline = float(((spend[val] - mean) ** 2).mean().sqrt())
    moved = int((emb.full_weight() != start).any(dim=1).sum())
    return {"rows": table.height, "keys": len(keys), "hits": emb.report.hits, "val_rmse": rmse,
            "mean_rmse": baseline, "rows_moved": moved}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vectors", default=str(REPO / "artifacts" / "latest"))
    p.add_argument("--table", default=str(REPO / "data" / "labels.csv"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--mode", default="finetune", help="frozen, finetune, partial or scratch")
    args = p.parse_args(argv)
    try:
        r = run(args.vectors, args.table, args.epochs, args.mode)
    except catvec.CatvecError as exc:
        print(f"own_model.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"{r['rows']} rows, {r['keys']} items ({r['hits']} with a pretrained vector); "
          f"embedding rows changed by training: {r['rows_moved']}")
    print(f"validation RMSE on held-out items: {r['val_rmse']:.3f} (predicting the mean: {r['mean_rmse']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`catvec finetune`: a tabular model whose embeddings start from pretrained vectors."""

from __future__ import annotations

import argparse
import sys

from catvec.cli.options import EpochProgress, add_common, add_config_arguments, config_from_args, say
from catvec.finetuning.config import FinetuneConfig

FINETUNE_EXAMPLE = """examples:
  catvec pretrain --out artifacts
  catvec finetune --vectors artifacts/latest --table data/labels.csv --target spend \\
      --cat-cols item_id,channel --cont-cols price,quantity --compare --out models
  catvec finetune --table labels.parquet --target churned --pretrained-cols merchant=vectors/latest \\
      --mode partial --unfreeze-after 3
  catvec finetune --config finetune.toml --embedding-lr 0.003   # flags override the file
  catvec finetune --table labels.csv --target genre --metric macro_f1 --compare   # --auto picks the model
  catvec finetune --table clicks.parquet --target clicked --hash-buckets item_id=100000 --device cuda
  catvec finetune --warm-start models/latest --vectors artifacts/latest --table labels.csv --epochs 0
      # the model with the new (aligned) vectors swapped in, scored, no training
  catvec finetune --warm-start models/latest --vectors artifacts/latest --table labels.csv --epochs 5
"""

def register(sub) -> None:
    p = sub.add_parser("finetune", help="train a tabular model whose embeddings start from pretrained vectors",
                       description="Align pretrained vectors to the labeled table's categories, train a "
                                   "PyTorch tabular model (embeddings + MLP) with validation, early stopping "
                                   "and per-epoch checkpoints, and write a new model version to OUT.",
                       epilog=FINETUNE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, FinetuneConfig)
    add_common(p)
    p.set_defaults(run=run_finetune)


def run_finetune(args) -> int:
    from catvec.finetuning.pipeline import finetune
    from catvec.reports.finetune_report import alignment_lines, auto_line, comparison_lines

    cfg = config_from_args(FinetuneConfig, args)
    say(args, f"catvec finetune: {cfg.table or '(no table)'} -> {cfg.out}")
    bars: dict[str, EpochProgress] = {}

    def on_epoch(mode, epoch, total, info):
        bar = bars.get(mode)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[mode] = EpochProgress(total, mode, quiet=args.quiet, every_epoch=False)
        bar(epoch, total, info)

    try:
        result = finetune(cfg, on_epoch=on_epoch, on_roles=lambda roles: say(args, *role_lines(roles)))
    except KeyboardInterrupt:
        print("catvec finetune: stopped; run the same command with --resume to continue after the last "
              "finished epoch", file=sys.stderr)
        raise
    finally:
        for bar in bars.values():
            bar.close()
    auto = [auto_line(result.metrics["auto"])] if "auto" in result.metrics else []
    warm = [warm_start_line(result.metrics["warm_start"])] if "warm_start" in result.metrics else []
    say(args, *alignment_lines(result.alignment), *auto, *warm, *comparison_lines(result.metrics))
    print(result.path)
    return 0


def warm_start_line(record: dict) -> str:
    columns = "; ".join(f"{col}: {r['moved']} rows moved with their vector (offsets {r['offsets']}), "
                        f"{r['kept']} kept, {r['new_keys']} new keys, {r['dropped_keys']} keys dropped"
                        for col, r in record["columns"].items())
    return f"warm start from {record['from']}: {len(record['copied'])} tensors copied; {columns}"


def role_lines(roles) -> list[str]:
    pretrained = ", ".join(f"{c} <- {d}" for c, d in roles.pretrained.items()) or "none"
    return [f"target {roles.target} ({roles.task}"
            + (f", {len(roles.classes)} classes)" if roles.classes else ")"),
            f"categorical: {', '.join(roles.cat_cols) or 'none'}; continuous: {', '.join(roles.cont_cols) or 'none'}",
            f"pretrained: {pretrained}"]

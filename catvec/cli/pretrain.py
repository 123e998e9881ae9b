"""`catvec pretrain`."""

from __future__ import annotations

import argparse
import sys

from catvec.cli.options import EpochProgress, add_common, add_config_arguments, config_from_args, say
from catvec.pretraining.config import PretrainConfig

PRETRAIN_EXAMPLE = """examples:
  catvec pretrain                                   # the bundled sample -> artifacts/latest
  catvec pretrain --events plays.parquet --user-col listener --item-col artist \\
      --session-gap 30m --dim 64 --epochs 10 --out vectors/
  catvec pretrain --events orders.csv --basket-col order_id --out baskets/
  catvec pretrain --config pretrain.toml --epochs 20   # flags override the file
"""


def register(sub) -> None:
    p = sub.add_parser("pretrain", help="learn item vectors from an events table",
                       description="Read events (user, item, time), build sequences or baskets, train "
                                   "skip-gram vectors with gensim and write a new version to OUT, then "
                                   "move OUT/latest to it.",
                       epilog=PRETRAIN_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, PretrainConfig)
    add_common(p)
    p.set_defaults(run=run_pretrain)


def run_pretrain(args) -> int:
    from catvec.pretraining.pipeline import pretrain
    from catvec.reports.render import pretrain_summary

    cfg = config_from_args(PretrainConfig, args)
    say(args, f"catvec pretrain: {cfg.events_path} -> {cfg.out}")
    progress = EpochProgress(cfg.epochs, "training", quiet=args.quiet)
    noise_progress = EpochProgress(0, "seed noise", quiet=args.quiet)  # the parent's baseline, once per parent

    def on_trial(trial: dict) -> None:
        if not args.quiet:
            key, m = max(trial["scores"].items(), key=lambda kv: kv[1]["ndcg"])
            knobs = " ".join(f"{k}={v}" for k, v in trial["params"].items())
            rung = f" (rung {trial['rung']})" if "rung" in trial else ""
            print(f"tuning: trial {trial['trial']}: {knobs}{rung} -> valid NDCG@10 {m['ndcg']:.4f} HR@10 {m['hr']:.4f} "
                  f"({key}, {trial['seconds']:.1f}s)", file=sys.stderr, flush=True)

    try:
        result = pretrain(cfg, on_epoch=progress, on_trial=on_trial, on_noise_epoch=noise_progress)
    finally:
        progress.close()
        noise_progress.close()
    say(args, *pretrain_summary(result.manifest))
    print(result.path)
    if not result.promoted:
        from catvec.base.errors import NotPromoted

        held = not result.gate.get("reasons")  # the gate passed it; latest was no longer its parent
        why = result.gate.get("held", "") if held else "; ".join(result.gate["reasons"])
        raise NotPromoted(f"{why}. {cfg.out}/latest is unchanged; "
                          f"`catvec promote {cfg.out} {result.version}` publishes this version"
                          + (" (or run again: against the current latest)" if held else " (or rerun with --force)"),
                          version=result.version, path=result.path, gate=result.gate)
    return 0


    return 0

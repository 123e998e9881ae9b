"""`catvec tune`: search the skip-gram settings on a sample, write the best as TOML."""

from __future__ import annotations

import argparse
import sys

from catvec.base.config import group_names
from catvec.cli.options import add_common, add_config_arguments, config_from_args, say
from catvec.pretraining.config import PretrainConfig

TUNE_EXAMPLE = """examples:
  catvec tune --events data/events.csv --trials 12 --write tuned.toml
  catvec tune --events plays.parquet --user-col listener --time-limit 10m --sample-users 5000
  catvec pretrain --config tuned.toml                  # train on everything with the best knobs
"""


# PretrainConfig fields tune has no use for: it writes a TOML file, never a version (its
# output and item attributes), and holds out the last two items itself
TUNE_SKIPS = (*group_names(PretrainConfig)["output"], *group_names(PretrainConfig)["attributes"], "holdout")


def register(sub) -> None:
    t = sub.add_parser("tune", help="search window, epochs, sample, ns_exponent; write the best config as TOML",
                       description="Train on a sample of users with the last two items held out, score each "
                                   "trial on the validation item (the second to last), and write the best "
                                   "settings as a TOML file for `catvec pretrain --config`.",
                       epilog=TUNE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(t, PretrainConfig, skip=TUNE_SKIPS)
    t.add_argument("--trials", type=int, default=12, help="at most this many trials (default: 12)")
    t.add_argument("--time-limit", default="", help="stop starting trials after this long, e.g. 90s, 10m (default: none)")
    t.add_argument("--sample-users", type=int, default=5000, help="tune on at most this many users, 0 = all (default: 5000)")
    t.add_argument("--metric", choices=["ndcg", "hr"], default="ndcg", help="validation score to maximise (default: ndcg)")
    t.add_argument("--write", default="tuned.toml", help="where to write the best config (default: tuned.toml)")
    add_common(t)
    t.set_defaults(run=run_tune)


def run_tune(args) -> int:
    from catvec.pretraining.tune import TuneBudget, tune

    cfg = config_from_args(PretrainConfig, args)
    budget = TuneBudget(trials=args.trials, time_limit=args.time_limit, sample_users=args.sample_users,
                        metric=args.metric).validate()
    say(args, f"catvec tune: {cfg.events_path}, {budget.describe()}")

    def progress(trial: dict) -> None:
        if not args.quiet:
            knobs = " ".join(f"{k}={v}" for k, v in trial["params"].items())
            best = " *" if trial["best"] else ""
            print(f"trial {trial['trial']}/{budget.trials}: {knobs} -> valid {args.metric}@10 "
                  f"{trial['score']:.4f} ({trial['seconds']:.1f}s){best}", file=sys.stderr, flush=True)

    result = tune(cfg, budget, args.write, on_trial=progress)
    say(args, f"best of {len(result.trials)} trial(s): valid {args.metric}@10 {result.best['score']:.4f} "
              f"(popularity {result.popularity:.4f}) with "
              + " ".join(f"{k}={v}" for k, v in result.best["params"].items()))
    print(result.path)
    return 0

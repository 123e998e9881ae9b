"""`catvec evaluate`: next-item quality of a version trained with a holdout."""

from __future__ import annotations

import argparse

from catvec.cli.options import add_common, add_scoring_arguments

EVALUATE_EXAMPLE = """examples:
  catvec pretrain --holdout last --out artifacts       # keep each user's last item out of training
  catvec evaluate --vectors artifacts/latest --events data/events.csv
  catvec evaluate --vectors artifacts/latest --query-last 3   # query = mean of the last 3 items
"""


def register(sub) -> None:
    e = sub.add_parser("evaluate", help="next-item HR@10 / NDCG@10 of a version trained with --holdout",
                       description="Rank every item by cosine similarity to each user's last item(s) and "
                                   "report where the held-out next item lands (HR@k, NDCG@k), beside a "
                                   "popularity baseline. The version must come from `catvec pretrain --holdout`.",
                       epilog=EVALUATE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--vectors", default="artifacts", help="a version dir, OUT/latest or OUT (default: artifacts)")
    e.add_argument("--events", default=None, help="the events the version was trained on (default: its manifest's input)")
    e.add_argument("--k", type=int, default=10, help="cut-off of HR@k and NDCG@k (default: 10)")
    e.add_argument("--query-last", type=int, default=None,
                   help="query = the user's last N items (default: the version's query_last)")
    add_scoring_arguments(e, topn=False)
    add_common(e)
    e.set_defaults(run=run_evaluate)


def run_evaluate(args) -> int:
    from catvec.base.errors import CatvecError
    from catvec.pretraining.evaluation import evaluate_version
    from catvec.reports.render import quality_table

    if args.k < 1 or (args.query_last is not None and args.query_last < 1):
        raise CatvecError("--k and --query-last must be >= 1")
    quality = evaluate_version(args.vectors, events=args.events, k=args.k, query_last=args.query_last,
                               scorer=args.scorer, min_support=args.min_support)
    for line in quality_table(quality):
        print(line)
    return 0

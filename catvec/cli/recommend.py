"""`catvec recommend`: top-k items per user (or basket) of a queries file."""

from __future__ import annotations

import argparse

from catvec.base.config import group_names
from catvec.cli.options import add_common, add_config_arguments, add_scoring_arguments, say
from catvec.pretraining.config import EventOptions, PretrainConfig

RECOMMEND_EXAMPLE = """examples:
  catvec recommend --vectors artifacts/latest --events data/events.csv --topn 10 --out recs.csv
  catvec recommend --vectors baskets/latest --events carts.csv --basket-col order_id --out recs.csv
  catvec recommend --vectors artifacts/latest --events data/events.csv --scorer cosine --out recs.csv
  catvec recommend --vectors artifacts/latest --events data/events.csv --no-cold --out recs.csv
"""
# The options of pretrain that say how to read an events file (its event-reading group but the
# input, which is --events QUERIES here): the queries are read alike.
READ_OPTIONS = tuple(name for name in group_names(PretrainConfig)["events"] if name != "events")


def register(sub) -> None:
    r = sub.add_parser("recommend", help="top-k items for every user (or basket) of a queries file",
                       description="Read QUERIES like pretrain reads events: one query per user (its items in "
                                   "time order) or per basket. Rank every item with the version's scorer "
                                   "(or --scorer) and write USER, rank, ITEM, score as CSV, named after the columns the vectors were "
                                   "trained with (or --user-col / --item-col). Items already in a query are never "
                                   "recommended; unknown items are skipped; a query with no known item gets "
                                   "the most frequent items.",
                       epilog=RECOMMEND_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--vectors", default="artifacts", help="a version dir, OUT/latest or OUT (default: artifacts)")
    r.add_argument("--events", required=True, metavar="QUERIES", help="the queries: .csv, .tsv or .parquet")
    r.add_argument("--out", required=True, help="the CSV to write")
    add_scoring_arguments(r)
    skip = [f for f in PretrainConfig.__dataclass_fields__ if f not in READ_OPTIONS]
    add_config_arguments(r, PretrainConfig, skip=skip, config=False)
    add_common(r)
    r.set_defaults(run=run_recommend)


def run_recommend(args) -> int:
    from catvec.base.config import build_config
    from catvec.pretraining.recommend import recommend_file, trained_columns

    remembered = trained_columns(args.vectors)      # the columns the vectors were trained with
    overrides = {name: getattr(args, name) if getattr(args, name) is not None else remembered.get(name)
                 for name in READ_OPTIONS}
    cfg = build_config(PretrainConfig, None, events=args.events, **overrides)
    result = recommend_file(EventOptions.of(cfg), args.vectors, args.k, args.out, scorer=args.scorer, min_support=args.min_support,
                            cold=args.cold)
    say(args, f"{result.queries} queries ({result.query_items} items, {result.unknown_items} unknown and skipped); "
              f"{result.popularity_queries} had no known item and got the most frequent items; "
              f"scorer {result.scorer}, min_support {result.min_support}")
    print(result.path)
    return 0

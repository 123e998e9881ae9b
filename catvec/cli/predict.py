"""`catvec predict`: score new rows with a model from `catvec finetune`."""

from __future__ import annotations

import argparse

from catvec.cli.options import add_common, say

PREDICT_EXAMPLE = """examples:
  catvec predict --model models/latest --table new_rows.csv --out scored.csv
  catvec predict --model models --table new_rows.parquet --out scored.parquet
"""


def register(sub) -> None:
    q = sub.add_parser("predict", help="score new rows with a model from `catvec finetune`",
                       description="Unseen categories go to <unk>; the output holds the input columns "
                                   "plus `prediction` (and p_<class> probabilities for classifiers).",
                       epilog=PREDICT_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--model", required=True, help="a model version dir, OUT/latest or OUT (its latest)")
    q.add_argument("--table", required=True, help="rows to score (.csv, .tsv, .parquet)")
    q.add_argument("--out", required=True, help="output file (.csv or .parquet)")
    add_common(q)
    q.set_defaults(run=run_predict)


def run_predict(args) -> int:
    from catvec.finetuning.predict import predict

    result = predict(args.model, args.table, args.out)
    say(args, f"scored {result.rows} rows")
    print(result.path)
    return 0

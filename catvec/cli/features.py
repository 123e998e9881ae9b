"""`catvec features`: a table with each key column's pretrained vectors as numeric columns."""

from __future__ import annotations

import argparse

from catvec.cli.options import add_common, say

FEATURES_EXAMPLE = """examples:
  catvec features --vectors artifacts/latest --table data/labels.csv --cols item_id --out labels_vec.parquet
  catvec features --vectors items/latest --table ratings.parquet --cols movieId,userId=users/latest \\
      --pretrained-input concat --dims 16 --out ratings_vec.csv
"""


def register(sub) -> None:
    f = sub.add_parser("features", help="append each key column's vectors to a table as numeric columns",
                       description="Read TABLE (CSV, TSV or Parquet) and write it again with one numeric column "
                                   "per vector dimension for each key column of --cols (COL_v0, COL_v1, ...; "
                                   "COL_pc0, ... with --dims), one output row per input row, in order. A missing "
                                   "or unknown key gives empty cells (a GBM handles them), counted in the summary.",
                       epilog=FEATURES_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--vectors", default=None, help="the weight dir of columns given without =DIR "
                                                   "(a version dir, OUT/latest or OUT)")
    f.add_argument("--table", required=True, help="the table: .csv, .tsv or .parquet")
    f.add_argument("--cols", required=True, metavar="COL[=VECTORS],...",
                   help="key columns: COL=DIR takes its vectors from DIR, a bare COL from --vectors")
    f.add_argument("--out", required=True, help="the table to write: .parquet or .csv")
    f.add_argument("--pretrained-input", choices=["input", "context", "concat"], default="input",
                   help="which vectors, as finetune's --pretrained-input: input, context, or both unit-normalised "
                        "side by side (default: input)")
    f.add_argument("--dims", type=int, default=None, metavar="K",
                   help="reduce each column's vectors to K dimensions by a PCA fitted on the version's vectors "
                        "(default: all dimensions)")
    add_common(f)
    f.set_defaults(run=run_features)


def run_features(args) -> int:
    from catvec.finetuning.features import parse_cols, write_features

    cols = parse_cols(args.cols, args.vectors)
    result = write_features(args.table, cols, args.out, args.pretrained_input, args.dims)
    say(args, f"{len(result.frame)} rows", *(r.summary() for r in result.columns))
    print(result.path)
    return 0

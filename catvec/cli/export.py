"""`catvec export`: a version's vectors as word2vec text, TensorBoard projector TSV or Parquet."""

from __future__ import annotations

import argparse

from catvec.cli.options import add_common


def register(sub) -> None:
    e = sub.add_parser("export", help="write vectors as word2vec text, TensorBoard projector TSV or Parquet",
                       epilog="examples:\n  catvec export --vectors artifacts/latest --format word2vec --out items.w2v.txt\n"
                              "  catvec export --vectors artifacts/latest --format word2vec --pretrained-input context "
                              "--out items.ctx.w2v.txt\n"
                              "  catvec export --vectors artifacts/latest --format projector --out projector/\n"
                              "  catvec export --vectors artifacts/latest --format parquet --out items.parquet",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--vectors", default="artifacts", help="a version dir, OUT/latest or OUT (default: artifacts)")
    e.add_argument("--format", choices=["word2vec", "projector", "parquet"], required=True,
                   help="parquet: one row per key with key, vector, context and count, keys exactly as trained")
    e.add_argument("--out", required=True, help="output file (word2vec, parquet) or directory (projector)")
    e.add_argument("--pretrained-input", choices=["input", "context", "concat"], default="input",
                   help="word2vec and projector: which vectors, as finetune's --pretrained-input: input, context "
                        "(what input . context scoring uses), or both unit-normalised side by side (default: input)")
    add_common(e)
    e.set_defaults(run=run_export)


def run_export(args) -> int:
    from catvec.base.errors import CatvecError
    from catvec.base.writes import check_writable, describe_os_error
    from catvec.base.vectors import export_parquet, export_projector, export_word2vec, load_vectors

    if args.format == "parquet" and args.pretrained_input != "input":
        raise CatvecError("--format parquet holds the input and the context vectors of every key already; "
                          "drop --pretrained-input")
    check_writable(args.out, "--out", file=args.format != "projector")
    vectors = load_vectors(args.vectors)
    try:
        if args.format == "word2vec":
            paths = [export_word2vec(vectors, args.out, args.pretrained_input)]
        elif args.format == "parquet":
            paths = [export_parquet(vectors, args.out)]
        else:
            paths = list(export_projector(vectors, args.out, which=args.pretrained_input))
    except OSError as exc:
        raise CatvecError(f"cannot write {args.out} ({describe_os_error(exc)})") from None
    for path in paths:
        print(path)
    return 0

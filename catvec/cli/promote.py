"""`catvec promote OUT VERSION`: move OUT/latest to a version (a held-back candidate, or a rollback)."""

from __future__ import annotations

import argparse

from catvec.cli.options import add_common, say


def register(sub) -> None:
    p = sub.add_parser("promote", help="point OUT/latest at a version (a held-back candidate, or a rollback)",
                       description="Move OUT/latest to VERSION atomically after checking its files against "
                                   "their checksums. Promoting an older version is a rollback; both are "
                                   "recorded in OUT/promotions.json.",
                       epilog="examples:\n  catvec promote artifacts 20261121T233000123Z-3f9a1c\n"
                              "  catvec versions artifacts     # to find the name",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="the output directory")
    p.add_argument("version", help="the version's name (a directory inside OUT)")
    add_common(p)
    p.set_defaults(run=run_promote)


def run_promote(args) -> int:
    from catvec.base.store import promote

    how = promote(args.out, args.version)
    if how == "unchanged":
        say(args, f"{args.version} is already latest in {args.out}")
    else:
        say(args, f"{args.out}/latest -> {args.version} ({how})")
    return 0

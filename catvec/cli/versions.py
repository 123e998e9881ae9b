"""`catvec versions OUT`: the versions of an output directory and their states."""

from __future__ import annotations

import argparse

from catvec.cli.options import add_common, say


def register(sub) -> None:
    v = sub.add_parser("versions", help="list the versions of an output directory",
                       description="One line per complete version, oldest first: its parent, its state (latest; "
                                   "promoted; refused by the promotion gate, with its reasons; candidate, kept "
                                   "out because its parent was no longer latest; interrupted, killed before "
                                   "publishing), its "
                                   "number of keys, held-out HR@10 (with --holdout) and drift (neighbour "
                                   "overlap with the parent / overlap between two seeds; 1 = seed noise), and "
                                   "a second line with each gate check's figure and threshold.",
                       epilog="example:\n  catvec versions artifacts",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("out", nargs="?", default="artifacts", help="the output directory (default: artifacts)")
    add_common(v)
    v.set_defaults(run=run_versions)


def run_versions(args) -> int:
    from catvec.pretraining.lifecycle import version_rows

    rows = version_rows(args.out)
    if not rows:
        say(args, f"{args.out}: no complete versions yet")
        return 0
    print(f"{'version':<28} {'parent':<28} {'status':<11} {'keys':>7} {'HR@10':>7} {'drift':>6}  note")
    for row in rows:
        print(f"{row['version']:<28} {row.get('parent', ''):<28} {row['status']:<11} {_cell(row.get('keys')):>7} "
              f"{_cell(row.get('hr10'), '.4f'):>7} {_cell(row.get('drift'), '.2f'):>6}  {row.get('note', '')}")
        if row.get("checks"):
            print(f"{'':<28} gate checks (figure/threshold, * failed): {row['checks']}")
    return 0


def _cell(value, fmt: str = "") -> str:
    return "-" if value is None else format(value, fmt)

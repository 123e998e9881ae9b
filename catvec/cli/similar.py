"""`catvec similar`: the nearest neighbours of some keys, or of every key (--all) into a file."""

from __future__ import annotations

import argparse
import sys
import time

from catvec.cli.options import add_common, add_scoring_arguments, say

SIMILAR_EXAMPLE = """examples:
  catvec similar --vectors artifacts/latest --k 5 1001
  catvec similar --vectors artifacts/latest --no-cold 1001     # only keys with history
  catvec similar --vectors artifacts/latest --all --out related.parquet --k 10
  catvec similar --vectors big/latest --all --out related.parquet --index approx   # needs catvec[ann]
"""


def register(sub) -> None:
    s = sub.add_parser("similar", help="print the nearest neighbours of a key, or write them for every key",
                       description="KEY...: print each key's nearest neighbours. --all --out FILE: write the "
                                   "top-k list of every key as Parquet or CSV (by its suffix), one row per "
                                   "(key, rank): key, rank, neighbour, score; the same lists `similar KEY` prints.",
                       epilog=SIMILAR_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("key", nargs="*", help="one or more keys (item ids); none with --all")
    s.add_argument("--vectors", default="artifacts", help="a version dir, OUT/latest or OUT (default: artifacts)")
    s.add_argument("--all", dest="all_keys", action="store_true",
                   help="the lists of every key, written to --out (batched: memory grows with the keys, "
                        "not with their square)")
    s.add_argument("--out", default=None, help="with --all: the .parquet or .csv file to write (whole or not at all)")
    s.add_argument("--index", default="exact", metavar="{exact,approx,auto}",
                   help="with --all: exact (every pair scored), approx (an HNSW index, optional extra: "
                        "pip install 'catvec[ann]'; scores exact, a few neighbours may be missed) or auto "
                        "(approx from 50,000 keys when installed) (default: exact)")
    s.add_argument("--ef-search", type=int, default=None, metavar="N",
                   help="with an approximate index: how widely it searches, recall against time (default: 64; "
                        "256 recovers near-tied neighbours of large flat catalogues, docs/scale.md)")
    add_scoring_arguments(s)
    add_common(s)
    s.set_defaults(run=run_similar)


def run_similar(args) -> int:
    from catvec.base.errors import CatvecError

    if args.k < 1:
        raise CatvecError(f"--k must be >= 1, got {args.k}")
    if args.all_keys:
        return run_similar_all(args)
    if not args.key:
        raise CatvecError("similar: name one or more keys, or pass --all --out FILE for every key")
    if args.out is not None or args.index != "exact" or args.ef_search is not None:
        raise CatvecError("similar: --out, --index and --ef-search go with --all (the lists of every key); "
                          "for single keys the lists are printed")
    return print_similar(args)


def print_similar(args) -> int:
    from catvec.base.scoring import check_scorer
    from catvec.base.vectors import load_vectors

    vectors = load_vectors(args.vectors)
    scorer = check_scorer(args.scorer or vectors.scorer, vectors)
    for key in args.key:
        count = f", seen {vectors.count(key)} times" if vectors.counts is not None and key in vectors else ""
        count += ", cold: composed from its attributes" if key in vectors and vectors.is_cold(key) else ""
        print(f"{key} ({scorer}{count}):")
        for other, score in vectors.most_similar(key, topn=args.k, scorer=scorer, min_support=args.min_support,
                                                 cold=args.cold):
            seen = f"\t{vectors.count(other)}" if vectors.counts is not None else ""
            seen += "\tcold" if vectors.is_cold(other) else ""
            print(f"  {other}\t{score:.4f}{seen}")
    return 0


def run_similar_all(args) -> int:
    from catvec.base.errors import CatvecError
    from catvec.base.related import (HNSW_SEARCH, check_ef_search, related_format, related_items, resolve_index,
                                      write_related)
    from catvec.base.writes import check_writable
    from catvec.base.vectors import load_vectors

    if args.key:
        raise CatvecError(f"similar --all: drop the keys ({' '.join(args.key[:3])}...): --all lists every key")
    if not args.out:
        raise CatvecError("similar --all: pass --out FILE (a .parquet or .csv file) for the lists of every key")
    related_format(args.out)                # .parquet or .csv: before any work
    resolve_index(args.index, 0)            # an unknown index, or approx without faiss: before any work
    if args.ef_search is not None and args.index == "exact":
        raise CatvecError("similar --all: --ef-search tunes the approximate index; pass --index approx or auto")
    ef_search = HNSW_SEARCH if args.ef_search is None else args.ef_search
    check_ef_search(ef_search)
    check_writable(args.out, "--out", file=True)
    vectors = load_vectors(args.vectors)
    start = time.perf_counter()
    index = resolve_index(args.index, len(vectors))
    progress = ProgressLines("similar --all", quiet=args.quiet)
    if not args.quiet and index == "approx":
        print(f"similar --all: building the approximate index of {len(vectors)} keys", file=sys.stderr, flush=True)
    related = related_items(vectors, k=args.k, scorer=args.scorer, min_support=args.min_support, cold=args.cold,
                            index=index, on_progress=progress, ef_search=ef_search)
    path = write_related(vectors, related, args.out)
    pairs = int((related.items >= 0).sum())
    say(args, f"{len(vectors)} keys, {pairs} neighbours ({related.index} index, scorer {related.scorer}, "
              f"min_support {related.min_support}) in {time.perf_counter() - start:.1f}s")
    print(path)
    return 0


class ProgressLines:
    """`progress(done, total)` -> a line on stderr at most every `every` seconds, and the last."""

    def __init__(self, label: str, quiet: bool = False, every: float = 5.0):
        self.label, self.quiet, self.every = label, quiet, every
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.quiet or (now - self.last < self.every and done < total):
            return
        self.last = now
        spent = now - self.start
        left = spent / done * (total - done) if done else 0.0
        print(f"{self.label}: {done}/{total} keys ({100 * done / max(total, 1):.0f}%), {spent:.0f}s, "
              f"~{left:.0f}s left", file=sys.stderr, flush=True)

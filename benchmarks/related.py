"""`catvec similar --all`: exact against the approximate index (HNSW, catvec[ann]), by size.

Clustered vectors (`--data flat` or `nested`, see clustered()), `dim` dimensions, scorer
cosine, k = 10. Per size:

- exact: catvec.base.related.exact_related. Up to --full-exact keys every key is scored;
  above, a random sample of --sample keys against all keys is timed and the time scaled
  linearly to every key (each key costs the same: one row of the same matrix product and top-k).
- approx: build_index over every key (timed in full), then search_index for each efSearch
  of --ef: over every key up to --full-exact, above over the same sample, scaled alike.
- recall@10: |approx list & exact list| / 10, averaged over the exactly scored keys.

Ratios are within one run; the machine is shared, so absolute seconds are indicative only.

    .venv/bin/python benchmarks/related.py --ef 64,128,256 --out benchmarks/results-related.md
    .venv/bin/python benchmarks/related.py --data nested --sizes 100000,1000000 --ef 64,128 \\
        --out benchmarks/results-related.md      # appends a second table
    .venv/bin/python benchmarks/related.py --sizes 2000,10000 --full-exact 10000   # quick, printed
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import machine_lines, markdown_table  # noqa: E402

from catvec.base.related import (HNSW_BUILD, HNSW_LINKS, HNSW_SEARCH, build_index, exact_related,  # noqa: E402
                                 load_faiss, search_index)
from catvec.base.scoring import make_scorer  # noqa: E402
from catvec.base.vectors import Vectors  # noqa: E402


def clustered(n: int, dim: int, seed: int = 0, data: str = "flat") -> Vectors:
    """flat: n / 50 centres, each key a centre plus noise as large as the centres' spread (its
    ~50 cluster mates nearly tie: the hard case for a graph index). nested: the same centres,
    then n / 5 sub-centres around them, each key close to its sub-centre (a few clear
    neighbours, then the cluster; closer to what skip-gram vectors look like)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 50), dim)).astype(np.float32)
    if data == "nested":
        subs = centres[rng.integers(0, len(centres), max(1, n // 5))]
        subs += 0.6 * rng.normal(size=subs.shape).astype(np.float32)
        matrix = subs[rng.integers(0, len(subs), n)] + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)
    else:
        matrix = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, dim)).astype(np.float32)
    return Vectors([str(i) for i in range(n)], matrix)


def measure(n: int, args) -> list[dict]:
    """One row per efSearch: exact seconds, build and query seconds, recall on the exactly scored keys."""
    s = make_scorer(clustered(n, args.dim, data=args.data), args.scorer)
    quiet = lambda done, total: None  # noqa: E731
    rows = None if n <= args.full_exact else np.sort(np.random.default_rng(1).choice(n, args.sample, replace=False))
    scale = 1 if rows is None else n / len(rows)
    start = time.perf_counter()
    truth, _ = exact_related(s, args.k, quiet, rows=rows)
    exact_s = (time.perf_counter() - start) * scale
    start = time.perf_counter()
    ann = build_index(s)
    build_s = time.perf_counter() - start
    out = []
    for ef in map(int, args.ef.split(",")):
        start = time.perf_counter()
        found, _ = search_index(ann, s, args.k, quiet, rows=rows, ef_search=ef)
        query_s = (time.perf_counter() - start) * scale
        recall = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, truth)]))
        out.append(dict(n=n, ef=ef, exact_s=exact_s, scaled=rows is not None, build_s=build_s, query_s=query_s,
                        recall=recall, checked=len(truth)))
        print(f"  {n} keys, efSearch {ef}: exact {exact_s:.1f}s, approx build {build_s:.1f}s + query {query_s:.1f}s"
              f"{' (both scaled)' if rows is not None else ''}, recall@{args.k} {recall:.4f}", file=sys.stderr, flush=True)
    return out


def warm_up() -> None:
    """Load torch (top-k) and faiss before the first timing."""
    s = make_scorer(clustered(200, 8))
    search_index(build_index(s), s, 3, lambda done, total: None)
    exact_related(s, 3, lambda done, total: None)


def faiss_version() -> str:
    return load_faiss().__version__


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,20000,50000,100000,1000000")
    ap.add_argument("--data", default="flat", choices=["flat", "nested"], help="see clustered()")
    ap.add_argument("--ef", default=str(HNSW_SEARCH), help="efSearch values to measure (comma list)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sample", type=int, default=5000, help="keys timed and checked above --full-exact")
    ap.add_argument("--full-exact", type=int, default=20000, help="time and check every key up to this size")
    ap.add_argument("--scorer", default="cosine", choices=["cosine", "context"])
    ap.add_argument("--out", default="-", help="a markdown file to write, or '-': print only")
    args = ap.parse_args(argv)
    warm_up()
    results = [row for n in args.sizes.split(",") for row in measure(int(n), args)]
    table = [[f"{r['n']:,}", r["ef"], f"{r['exact_s']:.1f}" + (" (scaled)" if r["scaled"] else ""),
              f"{r['build_s']:.1f}", f"{r['query_s']:.1f}" + (" (scaled)" if r["scaled"] else ""),
              f"{r['exact_s'] / (r['build_s'] + r['query_s']):.1f}x", f"{r['recall']:.4f} ({r['checked']:,} keys)"]
             for r in results]
    default = [r for r in results if r["ef"] == HNSW_SEARCH] or results
    pays = next((r["n"] for r in default if r["build_s"] + r["query_s"] < r["exact_s"]), None)
    command = " ".join(["benchmarks/related.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [f"`similar --all` exact vs approximate, {args.dim} dims, {args.data} clusters, scorer {args.scorer}, "
             f"k {args.k}: `.venv/bin/python {command}`", "", *machine_lines(),
             f"- faiss-cpu {faiss_version()}, HNSW M {HNSW_LINKS}, efConstruction {HNSW_BUILD}", "",
             *markdown_table(["keys", "efSearch", "exact s", "approx build s", "approx query s", "exact / approx",
                              f"recall@{args.k} vs exact"], table), "",
             f"with efSearch {default[0]['ef']}, approx was faster than exact from {pays:,} keys on "
             "(the smallest size measured where it was)" if pays else
             "approx was not faster than exact at any size measured", ""]
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

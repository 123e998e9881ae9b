"""`catvec similar --all`: exact against the approximate index (HNSW, catvec[ann]), by size.

Clustered unit vectors (n / 50 centres in `dim` dimensions, each key a centre plus Gaussian
noise as large as the centres' spread: neighbours are close but not separable at a glance),
scorer cosine, k = 10. Per size:

- exact: catvec.base.related.exact_related. Up to --full-exact keys every key is scored;
  above, a random sample of --sample keys against all keys is timed and the time scaled
  linearly to every key (each key costs the same: one row of the same matrix product and top-k).
- approx: build_index + search_index over every key, both timed in full.
- recall@10: |approx list & exact list| / 10, averaged over the exactly scored keys.

Ratios are within one run; the machine is shared, so absolute seconds are indicative only.

    .venv/bin/python benchmarks/related.py                               # 2k ... 1M keys
    .venv/bin/python benchmarks/related.py --sizes 10000,100000 --out -  # print only
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


def clustered(n: int, dim: int, seed: int = 0, noise: float = 1.0) -> Vectors:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 50), dim)).astype(np.float32)
    matrix = centres[rng.integers(0, len(centres), n)]
    matrix += noise * rng.normal(size=(n, dim)).astype(np.float32)
    return Vectors([str(i) for i in range(n)], matrix)


def measure(n: int, dim: int, k: int, sample: int, full_exact: int, scorer: str) -> dict:
    vectors = clustered(n, dim)
    s = make_scorer(vectors, scorer)
    quiet = lambda done, total: None  # noqa: E731
    rows = None if n <= full_exact else np.sort(np.random.default_rng(1).choice(n, sample, replace=False))
    start = time.perf_counter()
    truth, _ = exact_related(s, k, quiet, rows=rows)
    exact_s = (time.perf_counter() - start) * (1 if rows is None else n / len(rows))
    start = time.perf_counter()
    ann = build_index(s)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    found, _ = search_index(ann, s, k, quiet)
    query_s = time.perf_counter() - start
    found = found if rows is None else found[rows]
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)]))
    result = dict(n=n, exact_s=exact_s, scaled=rows is not None, build_s=build_s, query_s=query_s, recall=recall,
                  checked=len(truth))
    print(f"  {n} keys: exact {exact_s:.1f}s{' (scaled)' if rows is not None else ''}, approx build {build_s:.1f}s "
          f"+ query {query_s:.1f}s, recall@{k} {recall:.4f}", file=sys.stderr, flush=True)
    return result


def warm_up() -> None:
    """Load torch (top-k) and faiss before the first timing."""
    s = make_scorer(clustered(200, 8))
    search_index(build_index(s), s, 3, lambda done, total: None)
    exact_related(s, 3, lambda done, total: None)


def faiss_version() -> str:
    return load_faiss().__version__


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,5000,10000,20000,50000,100000,1000000")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sample", type=int, default=5000, help="exactly scored keys above --full-exact")
    ap.add_argument("--full-exact", type=int, default=20000, help="score every key exactly up to this size")
    ap.add_argument("--scorer", default="cosine", choices=["cosine", "context"])
    ap.add_argument("--out", default=str(Path(__file__).with_name("results-related.md")), help="'-': print only")
    args = ap.parse_args(argv)
    warm_up()
    results = [measure(int(n), args.dim, args.k, args.sample, args.full_exact, args.scorer)
               for n in args.sizes.split(",")]
    table = [[f"{r['n']:,}", f"{r['exact_s']:.1f}" + (" (scaled)" if r["scaled"] else ""), f"{r['build_s']:.1f}",
              f"{r['query_s']:.1f}", f"{r['exact_s'] / (r['build_s'] + r['query_s']):.1f}x",
              f"{r['recall']:.4f} ({r['checked']:,} keys)"] for r in results]
    pays = next((r["n"] for r in results if r["build_s"] + r["query_s"] < r["exact_s"]), None)
    lines = [f"`similar --all` exact vs approximate, {args.dim} dims, scorer {args.scorer}, k {args.k}: "
             f"`.venv/bin/python benchmarks/related.py --sizes {args.sizes}`", "", *machine_lines(), f"- faiss-cpu {faiss_version()}, HNSW M {HNSW_LINKS}, efConstruction {HNSW_BUILD}, "
             f"efSearch {HNSW_SEARCH}", "",
             *markdown_table(["keys", "exact s", "approx build s", "approx query s", "exact / approx",
                             f"recall@{args.k} vs exact"], table), "",
             f"approx is faster than exact from {pays:,} keys on (the smallest size measured where it was)"
             if pays else "approx was not faster than exact at any size measured", ""]
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

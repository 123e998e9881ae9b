"""Rare items in neighbour lists: The Matrix's neighbours on MovieLens ml-latest-small with
min_support 1, 3 and 10, and what the support threshold costs on next-item HR@10.

Trains one version the way `catvec pretrain --holdout last` does with no settings given
(seed 1), then lists the five nearest movies to The Matrix (movieId 2571) by cosine with
their training counts, and scores the held-out last items with each threshold. Writes
its tables into docs/evaluation.md between markers.

    .venv/bin/python benchmarks/rare_items.py          # about 1-2 minutes on 2 cores
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_lines, markdown_table, movielens_config, movielens_dir  # noqa: E402
from vectors_quality import write_between_markers  # noqa: E402

DOC = REPO / "docs" / "evaluation.md"
MARKERS = ("<!-- rare-items:begin -->", "<!-- rare-items:end -->")
MATRIX = "2571"
SUPPORTS = (1, 3, 10)


def main() -> int:
    if movielens_dir() is None:
        return 0
    import pandas as pd

    from catvec.pretraining.evaluation import evaluate_version
    from catvec.pretraining.pipeline import pretrain

    titles = pd.read_csv(movielens_dir() / "movies.csv", dtype={"movieId": str}).set_index("movieId")["title"]
    with tempfile.TemporaryDirectory() as tmp:
        result = pretrain(movielens_config(out=tmp, holdout="last", workers=2))
        from catvec.base.vectors import load_vectors

        vectors = load_vectors(result.path)
        lines = machine_lines() + [f"- version: chosen settings {result.manifest['tuning'].get('chosen')}, "
                                   f"min_support per scorer {result.manifest['scoring'].get('supports')}", ""]
        header = ["min_support", *[f"neighbour {i}" for i in range(1, 6)]]
        body = []
        for support in SUPPORTS:
            near = vectors.most_similar(MATRIX, topn=5, scorer="cosine", min_support=support)
            body.append([support, *[f"{titles.get(k, k)} ({vectors.count(k)})" for k, _ in near]])
        lines += [f"Cosine neighbours of {titles[MATRIX]} (seen {vectors.count(MATRIX)} times; "
                  "training counts in brackets):", "", *markdown_table(header, body), ""]
        rows = []
        for support in SUPPORTS:
            q = evaluate_version(result.path, min_support=support)
            rows.append([support, *[f"{q['scorers'][s]['test']['hr']:.4f}" for s in q["scorers"]],
                         f"{int((vectors.counts >= support).sum()):,} of {len(vectors):,}"])
        names = list(q["scorers"])
        lines += ["Next-item test HR@10 by threshold (items below it are never listed):", "",
                  *markdown_table(["min_support", *[f"{n} HR@10" for n in names], "items that can be listed"], rows),
                  "", "Reproduce: `.venv/bin/python benchmarks/rare_items.py`."]
    text = "\n".join(lines)
    print(text)
    write_between_markers(DOC, text, MARKERS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

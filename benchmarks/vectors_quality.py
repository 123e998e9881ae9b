"""Do catvec's defaults beat gensim out of the box? Next item and complete-the-basket on
MovieLens ml-latest-small, every baseline in the same run, several seeds.

Next item (each user's ratings in time order): the last item is the test item, the one
before it the validation item. Rows:
- popularity: training counts;
- gensim text defaults: skip-gram with gensim's own settings (dim 100, window 5, 5 epochs,
  min_count 5, sample 1e-3, ns_exponent 0.75), cosine;
- catvec 0.1 defaults: window 10, 10 epochs, sample 1e-3, ns_exponent 1.0, cosine;
- grid tuned on validation: GRID (x 2 scorers) trained without the last two items, the
  best validation NDCG@10 retrained without the test item only;
- catvec defaults: what `catvec pretrain --holdout last` does with no settings given
  (catvec.pretraining.autotune chooses on the validation item, then trains).
Every row is scored on the same test items.

Baskets: a user's ratings within the same clock hour form a basket (2 to MAX_BASKET
items; bigger ones are bulk imports and are dropped), and the bundled data/baskets.csv
(planted complements among popular staples); `--holdout basket` hides one item of one in
ten baskets (test) and of another one in ten (valid). Rows: popularity, input cosine with
gensim text defaults, catvec defaults.

    .venv/bin/python benchmarks/vectors_quality.py [--seeds 3] [--quick]

It writes its tables into docs/evaluation.md between markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_lines, markdown_table, movielens_config, movielens_dir  # noqa: E402

DOC = REPO / "docs" / "evaluation.md"
BEGIN, END = "<!-- vectors-quality:begin -->", "<!-- vectors-quality:end -->"
GENSIM_TEXT = dict(dim=100, window=5, epochs=5, min_count=5, sample=1e-3, ns_exponent=0.75, scorer="cosine", min_support=1)
CATVEC_01 = dict(window=10, epochs=10, sample=1e-3, ns_exponent=1.0, scorer="cosine", min_support=1)
GRID = ([dict(window=w, ns_exponent=ns, sample=s, epochs=15)
         for w, ns, s in itertools.product((5, 10, 30), (0.0, 0.5, 1.0), (0.0, 1e-3))]
        + [dict(window=10, ns_exponent=ns, sample=s, epochs=30) for ns, s in itertools.product((0.0, 0.5, 1.0), (0.0, 1e-3))])
MAX_BASKET = 30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a 4-config grid and 1 seed (a smoke run)")
    parser.add_argument("--only", choices=["next-item", "baskets"], default=None, help="run one section")
    args = parser.parse_args()
    if movielens_dir() is None:
        return 0
    grid = GRID[::6] if args.quick else GRID
    seeds = list(range(1, (1 if args.quick else args.seeds) + 1))
    started = time.perf_counter()
    lines = machine_lines()[:1] + ["- data: ml-latest-small ratings (100,836 events, 610 users, 9,724 movies); dim 64 "
                                   "unless said, 5 negatives, 2 workers; HR@10 / NDCG@10, mean over seeds "
                                   f"{', '.join(map(str, seeds))} (min-max)", ""]
    sections = []
    if args.only in (None, "next-item"):
        sections += next_item(grid, seeds) + [""]
    if args.only in (None, "baskets"):
        sections += baskets(seeds)
    lines += sections
    lines[1:1] = machine_lines()[1:]
    lines.append("")
    lines.append(f"Whole run: {time.perf_counter() - started:.0f} s. Reproduce: `.venv/bin/python benchmarks/vectors_quality.py`.")
    text = "\n".join(lines)
    print(text)
    if not args.quick and args.only is None:  # the doc holds whole runs only
        write_between_markers(DOC, text)
    return 0


def next_item(grid, seeds) -> list[str]:
    from catvec.pretraining.config import EventOptions
    from catvec.pretraining.events import read_events_table

    base = movielens_config(workers=2)
    table = read_events_table(EventOptions.of(base))
    out = ["### Next item (leave last out)", ""]
    with tempfile.TemporaryDirectory() as tmp:
        last2 = corpus(base, table, Path(tmp) / "last2.txt", holdout=2)
        last = corpus(base, table, Path(tmp) / "last.txt", holdout=1)
        trials = []
        for params in grid:
            scores = train_and_score(dataclasses.replace(base, **params, scorer="", min_support=1), last2, table, 2, "valid")
            for scorer, m in scores["by_scorer"].items():
                trials.append((m["ndcg"], m["hr"], params, scorer))
            print(f"grid {params}: " + ", ".join(f"{s} {m['hr']:.4f}" for s, m in scores["by_scorer"].items()), flush=True)
        trials.sort(key=lambda t: -t[0])
        best = trials[0]
        rows = {"popularity": [], "gensim text defaults (cosine)": [], "catvec 0.1 defaults (cosine)": [],
                f"grid best on validation ({len(trials)} configs)": [], "catvec defaults": []}
        costs = {"catvec defaults": [], "plain": []}
        chosen = []
        for seed in seeds:
            cfg = dataclasses.replace(base, seed=seed)
            old = train_and_score(dataclasses.replace(cfg, **CATVEC_01), last, table, 1, "test")
            rows["popularity"].append(old["popularity"])
            rows["catvec 0.1 defaults (cosine)"].append(old["chosen"])
            rows["gensim text defaults (cosine)"].append(train_and_score(dataclasses.replace(cfg, **GENSIM_TEXT),
                                                                         corpus(cfg, table, Path(tmp) / "g.txt", 1, 5),
                                                                         table, 1, "test")["chosen"])
            rows[f"grid best on validation ({len(trials)} configs)"].append(
                train_and_score(dataclasses.replace(cfg, **best[2], scorer=best[3], min_support=1), last, table, 1, "test")["chosen"])
            t = time.perf_counter()
            resolved = settled(cfg, table, last.stats["tokens"])
            result = train_and_score(resolved, last, table, 1, "test")
            costs["catvec defaults"].append(time.perf_counter() - t)
            costs["plain"].append(result["seconds"])
            rows["catvec defaults"].append(result["chosen"])
            chosen.append({k: getattr(resolved, k) for k in ("window", "epochs", "ns_exponent", "sample", "scorer", "min_support")})
    out += result_table(rows)
    top = [[f"{t[2]['window']}", t[2]["epochs"], t[2]["ns_exponent"], t[2]["sample"], t[3], t[0], t[1]] for t in trials[:8]]
    out += ["", "Best grid configurations on validation (of "
            f"{len(trials)}: window x ns_exponent x sample x epochs x scorer):", ""]
    out += markdown_table(["window", "epochs", "ns_exponent", "sample", "scorer", "valid NDCG@10", "valid HR@10"], top)
    out += ["", "catvec defaults chose: " + "; ".join(
        f"seed {s}: " + ", ".join(f"{k}={v}" for k, v in c.items()) for s, c in zip(seeds, chosen)),
        f"Cost of catvec defaults (tuning + training): {np.mean(costs['catvec defaults']):.0f} s per seed, "
        f"{np.mean(costs['catvec defaults']) / np.mean(costs['plain']):.1f}x one plain training "
        f"with the chosen settings ({np.mean(costs['plain']):.1f} s)."]
    ratio(out, rows, "catvec defaults", "gensim text defaults (cosine)")
    ratio(out, rows, "catvec defaults", f"grid best on validation ({len(trials)} configs)")
    return out


def baskets(seeds) -> list[str]:
    import pandas as pd
    import polars as pl

    ratings = pd.read_csv(movielens_dir() / "ratings.csv")
    ratings["basket"] = ratings["userId"].astype(str) + "-" + (ratings["timestamp"] // 3600).astype(str)
    size = ratings.groupby("basket")["movieId"].transform("size")
    ratings = ratings[(size >= 2) & (size <= MAX_BASKET)]
    out = ["### Complete the basket (same-hour ratings)", "",
           f"{len(ratings):,} ratings in {ratings['basket'].nunique():,} baskets of 2-{MAX_BASKET} items.", ""]
    out += basket_rows(movielens_config(events="", basket_col="basket", holdout="basket", workers=2),
                       pl.from_pandas(ratings), seeds)
    sample = REPO / "data" / "baskets.csv"
    out += ["", "### Complete the basket (bundled sample with planted complements)", "",
            "`data/baskets.csv` (generated by `data/make_sample.py`): 3,000 orders of 1-3 Zipf-popular staples, "
            "in 80% of them a planted complement pair, sometimes a rare filler.", ""]
    out += basket_rows(movielens_config(events=str(sample), user_col="", item_col="item_id", time_col="",
                                        basket_col="order_id", holdout="basket", workers=2), None, seeds)
    return out


def basket_rows(base, events, seeds) -> list[str]:
    from catvec.pretraining.config import EventOptions
    from catvec.pretraining.events import read_events_table

    table = read_events_table(EventOptions.of(base), events)
    rows = {"popularity": [], "input cosine, gensim text defaults": [], "catvec defaults": []}
    chosen = []
    with tempfile.TemporaryDirectory() as tmp:
        held = corpus(base, table, Path(tmp) / "b.txt", holdout=2)
        for seed in seeds:
            cfg = dataclasses.replace(base, seed=seed)
            g = train_and_score(dataclasses.replace(cfg, **GENSIM_TEXT), corpus(cfg, table, Path(tmp) / "g.txt", 2, 5),
                                table, 2, "test")
            rows["popularity"].append(g["popularity"])
            rows["input cosine, gensim text defaults"].append(g["chosen"])
            resolved = settled(cfg, table, held.stats["tokens"])
            rows["catvec defaults"].append(train_and_score(resolved, held, table, 2, "test")["chosen"])
            chosen.append({k: getattr(resolved, k) for k in ("epochs", "ns_exponent", "sample", "scorer", "min_support")})
    out = result_table(rows)
    out += ["", "catvec defaults chose: " + "; ".join(
        f"seed {s}: " + ", ".join(f"{k}={v}" for k, v in c.items()) for s, c in zip(seeds, chosen))]
    ratio(out, rows, "catvec defaults", "popularity")
    ratio(out, rows, "catvec defaults", "input cosine, gensim text defaults")
    return out


def settled(cfg, table, tokens: int):
    """cfg with the settings it leaves open chosen as `catvec pretrain` chooses them."""
    from catvec.pretraining.autotune import choose_settings
    from catvec.pretraining.config import Scoring, SequenceRules, SkipGram, Tuning

    chosen, _ = choose_settings(table, tokens, SkipGram.of(cfg), Scoring.of(cfg), Tuning.of(cfg),
                                SequenceRules.of(cfg), bool(cfg.basket_col))
    return dataclasses.replace(cfg, **chosen)


def corpus(cfg, table, path, holdout, min_count=1):
    from catvec.pretraining.corpus import build_corpus

    return build_corpus(table, path, rules(cfg, holdout, min_count))


def rules(cfg, holdout: int, min_count: int = 1):
    """cfg's sequence rules holding out the last `holdout` items (one of a share of baskets)."""
    from catvec.pretraining.config import SequenceRules

    mode = "basket" if cfg.basket_col else {1: "last", 2: "last2"}[holdout]
    return dataclasses.replace(SequenceRules.of(cfg), holdout=mode, min_count=min_count)


def train_and_score(cfg, corpus_, table, holdout, role) -> dict:
    from catvec.pretraining.config import SkipGram
    from catvec.pretraining.evaluation import build_tasks, score_tasks
    from catvec.pretraining.skipgram import train_vectors

    t = time.perf_counter()
    vectors, _ = train_vectors(corpus_, SkipGram.of(cfg), min_count=cfg.min_count)
    seconds = time.perf_counter() - t
    vectors.scorer = cfg.scorer or "cosine"
    tasks, counts, _ = build_tasks(table, vectors.keys, rules(cfg, holdout))
    q = score_tasks(vectors, {role: tasks[role]}, counts, query_last=0 if cfg.basket_col else cfg.query_last,
                    min_support=cfg.min_support or 1)
    return {"chosen": q["vectors"][role], "popularity": q["popularity"][role], "seconds": seconds,
            "by_scorer": {s: r[role] for s, r in q["scorers"].items()}}


def result_table(rows: dict) -> list[str]:
    body = []
    for name, runs in rows.items():
        hr = [r["hr"] for r in runs]
        ndcg = [r["ndcg"] for r in runs]
        body.append([name, f"{np.mean(hr):.4f} ({min(hr):.4f}-{max(hr):.4f})",
                     f"{np.mean(ndcg):.4f} ({min(ndcg):.4f}-{max(ndcg):.4f})", runs[0]["users"]])
    return markdown_table(["", "test HR@10", "test NDCG@10", "queries"], body)


def ratio(out: list[str], rows: dict, a: str, b: str) -> None:
    ma, mb = np.mean([r["hr"] for r in rows[a]]), np.mean([r["hr"] for r in rows[b]])
    out.append(f"- {a} / {b}: HR@10 {ma / mb:.2f}x" if mb else f"- {b}: HR@10 0")


def write_between_markers(path: Path, text: str, markers=(BEGIN, END)) -> None:
    begin, end = markers
    doc = path.read_text(encoding="utf-8")
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        doc = head + begin + "\n\n" + text + "\n\n" + end + rest.split(end, 1)[1]
    else:
        doc += f"\n{begin}\n\n{text}\n\n{end}\n"
    path.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

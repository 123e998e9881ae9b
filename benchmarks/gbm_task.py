"""catvec or a GBM? The "liked" task on MovieLens ml-latest-small (read from ../shared).

liked = rating >= 4, predicted from userId, movieId, genres and year (from the title).
2% and 10% of the ratings are labeled (four fifths train, one fifth validation); a fixed
sample of the other ratings is the test set. Every rating is behaviour for pretraining:

    items   catvec pretrain --events ratings.csv --user-col userId --item-col movieId --time-col timestamp
    users   catvec pretrain --events ratings.csv --user-col movieId --item-col userId --time-col timestamp
            (roles swapped: users are the "items" of each movie's audience, in time order)

Per split (3 seeds), test ROC AUC of:
- `catvec finetune --compare` with its defaults (so --auto, --key-stats: each column's
  smoothed like-rate and count from the training rows, and --blend: the best candidates
  averaged, a kNN vote blended in, then the validation labels used for scoring), movieId
  and userId pretrained, and the chosen candidate before the blend (its test AUC with the
  training rows' statistics alone); its
  baselines on the same split: scratch, linear probe, kNN, LightGBM on the raw columns
  (gbm_raw) and LightGBM with the vectors (gbm_vectors);
- CatBoost on the raw columns (ids as its own categorical features) and CatBoost with
  `catvec.features` columns, as a user would run it, on the same rows.

Writes benchmarks/gbm_task.md. Skips cleanly (exit 0, a message) when the data is absent.
CatBoost is not a catvec dependency: `.venv/bin/pip install -c constraints.txt catboost` first
(constraints.txt pins the version measured, 1.2.10).

    .venv/bin/python benchmarks/gbm_task.py                 # 3 seeds
    .venv/bin/python benchmarks/gbm_task.py --seeds 1 --fractions 0.02
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_lines, markdown_table, movielens_config, movielens_dir, record_seed  # noqa: E402

OUT = REPO / "benchmarks" / "gbm_task.md"
FRACTIONS = (0.02, 0.10)
TEST_ROWS = 20_000
RUNS = ("catvec finetune", "before blend", "scratch", "linear_probe", "knn", "lightgbm raw", "lightgbm + vectors",
        "catboost raw", "catboost + vectors")


def liked_table():
    """ratings + movies -> userId, movieId, genres, year, liked (polars)."""
    import polars as pl

    ml = movielens_dir()
    ids = {"userId": pl.Utf8, "movieId": pl.Utf8}
    ratings = pl.read_csv(ml / "ratings.csv", schema_overrides=ids)
    movies = pl.read_csv(ml / "movies.csv", schema_overrides={"movieId": pl.Utf8})
    movies = movies.with_columns(year=pl.col("title").str.extract(r"\((\d{4})\)\s*$").cast(pl.Float64))
    movies = movies.with_columns(pl.col("year").fill_null(pl.col("year").median()))
    return (ratings.join(movies.select("movieId", "genres", "year"), on="movieId", how="left", maintain_order="left")
            .select("userId", "movieId", "genres", "year", liked=(pl.col("rating") >= 4).cast(pl.Int64)))


def split_column(n: int, fraction: float, seed: int) -> np.ndarray:
    """train / val / test / "" (unused) per rating."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_labeled = int(round(fraction * n))
    split = np.full(n, "", dtype=object)
    split[order[:n_labeled]] = "train"
    split[order[:n_labeled // 5]] = "val"
    split[order[n_labeled:n_labeled + TEST_ROWS]] = "test"
    return split


def pretrain_both(where: Path) -> tuple[Path, Path]:
    """Item and user vectors in where/items, where/users (reused when already there)."""
    from catvec.pretraining.pipeline import pretrain

    items, users = where / "items" / "latest", where / "users" / "latest"
    if not items.exists():
        pretrain(movielens_config(out=str(where / "items")))
    if not users.exists():
        pretrain(movielens_config(out=str(where / "users"), user_col="movieId", item_col="userId"))
    return items.resolve(), users.resolve()


def catvec_scores(frame, items: Path, users: Path, seed: int, out: Path) -> dict:
    """Test AUC of `catvec finetune --compare` defaults and of its baselines."""
    from catvec.finetuning.config import FinetuneConfig
    from catvec.finetuning.pipeline import finetune

    cfg = FinetuneConfig(vectors=str(items), target="liked", cat_cols="userId,movieId,genres", cont_cols="year",
                         pretrained_cols=f"movieId={items},userId={users}", split_col="split", compare=True,
                         seed=seed, out=str(out), keep=1)
    m = finetune(cfg, table=frame).metrics
    base = {name: b["best"]["test_auc"] for name, b in m["baselines"].items()}
    blend = m.get("auto", {}).get("blend", {})
    print(f"  blend: weight {blend.get('weight')}, k {blend.get('k')}", file=sys.stderr, flush=True)
    return {"catvec finetune": m["test"]["test_auc"], "scratch": m["scratch"]["test"]["test_auc"],
            "before blend": (blend.get("test_before") or m["test"])["test_auc"],
            "linear_probe": base["linear_probe"], "knn": base["knn"],
            "lightgbm raw": base.get("gbm_raw", float("nan")), "lightgbm + vectors": base.get("gbm_vectors", float("nan")),
            "chosen": m.get("auto", {}).get("chosen")}


def catboost_scores(frame, items: Path, users: Path, seed: int) -> dict:
    """CatBoost as a user runs it: raw id columns as categorical features; then + catvec.features."""
    import catboost
    import polars as pl

    import catvec
    from catvec.finetuning.metrics import auc

    wide = catvec.features(frame, cols={"movieId": str(items), "userId": str(users)})
    cats = ["userId", "movieId", "genres"]
    raw_cols = [*cats, "year"]
    vec_cols = [c for c in wide.columns if c not in frame.columns]
    scores = {}
    for label, cols in (("catboost raw", raw_cols), ("catboost + vectors", raw_cols + vec_cols)):
        parts = {s: wide.filter(pl.col("split") == s) for s in ("train", "val", "test")}
        pools = {s: catboost.Pool(p.select(cols).to_pandas(), p["liked"].to_numpy(), cat_features=cats)
                 for s, p in parts.items()}
        model = catboost.CatBoostClassifier(iterations=2000, learning_rate=0.05, random_seed=seed, verbose=False,
                                            thread_count=1, od_type="Iter", od_wait=100, use_best_model=True,
                                            allow_writing_files=False)
        model.fit(pools["train"], eval_set=pools["val"])
        scores[label] = auc(parts["test"]["liked"].to_numpy(), model.predict_proba(pools["test"])[:, 1])
    return scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--fractions", default=",".join(str(f) for f in FRACTIONS))
    p.add_argument("--vectors-dir", default=None,
                   help="keep the pretrained item and user vectors here and reuse them (default: a temporary dir)")
    args = p.parse_args(argv)
    if movielens_dir() is None:
        return 0
    import polars as pl

    logging.basicConfig(level=logging.WARNING)
    fractions = [float(f) for f in args.fractions.split(",")]
    started = time.perf_counter()
    table = liked_table()
    scores: dict[tuple, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="catvec-gbm-") as tmp:
        tmp = Path(tmp)
        items, users = pretrain_both(Path(args.vectors_dir) if args.vectors_dir else tmp)
        print(f"pretrained ({time.perf_counter() - started:.0f}s)", file=sys.stderr, flush=True)
        for fraction in fractions:
            for seed in range(args.seeds):
                t = time.perf_counter()
                frame = table.with_columns(split=pl.Series(split_column(table.height, fraction, seed), dtype=pl.Utf8))
                frame = frame.filter(pl.col("split") != "")
                found = catvec_scores(frame, items, users, seed, tmp / "ft")
                found.update(catboost_scores(frame, items, users, seed))
                record_seed(scores, fraction, found, RUNS, f"{fraction:.0%} seed {seed}", t)
    rows = []
    for fraction in fractions:
        mean = {r: float(np.mean(scores[(fraction, r)])) for r in RUNS}
        best_gbm_vec = max(mean["lightgbm + vectors"], mean["catboost + vectors"])
        best_gbm_raw = max(mean["lightgbm raw"], mean["catboost raw"])
        rows.append([f"{fraction:.0%} ({int(round(fraction * table.height))} ratings)",
                     *(f"{mean[r]:.4f} ± {np.std(scores[(fraction, r)]):.4f}" for r in RUNS),
                     f"{mean['catvec finetune'] / best_gbm_raw:.3f}x", f"{mean['catvec finetune'] / best_gbm_vec:.3f}x"])
    lines = ["# catvec or a GBM? MovieLens ml-latest-small, liked = rating >= 4", "", *machine_lines(),
             f"- command: `.venv/bin/python benchmarks/gbm_task.py --seeds {args.seeds} --fractions {args.fractions}`",
             "", f"Test ROC AUC on {TEST_ROWS:,} unlabeled ratings, mean ± std over {args.seeds} seed(s); features "
             "userId, movieId, genres, year; item and user vectors pretrained on all "
             f"{table.height:,} ratings with catvec's defaults (users with the roles swapped).", "",
             *markdown_table(["labeled", *RUNS, "finetune / best GBM raw", "finetune / best GBM + vectors"], rows),
             "", f"Run time: {time.perf_counter() - started:.0f}s."]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

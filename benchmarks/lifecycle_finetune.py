"""Does a fine-tuned model survive a retrain of its vectors? MovieLens ml-latest-small.

v1: `catvec pretrain` on the ratings before the time cut (80th percentile of the
timestamps); v2: on all ratings, another seed. v2 is taken twice: as trained (unaligned:
an unrelated coordinate system) and rotated into v1's space (aligned):

    --aligned-by script   orthogonal Procrustes (numpy SVD) fitted here on the movies seen at
                          least MIN_COUNT times in both versions
    --aligned-by catvec   v2 pretrained into v1's OUT, so that catvec aligns it to its parent
                          itself; the unaligned v2 comes from a fresh OUT (no parent)

Task: each movie's first listed genre from movieId alone (as benchmarks/movielens.py), on
the movies v1 knows; a share of them labeled (a fifth of those for validation), the rest
the test set. A model is trained on v1 (`catvec finetune` defaults, --metric macro_f1),
then, without retraining, scored with v1 / v2 aligned / v2 unaligned swapped in
(`--warm-start MODEL --epochs 0`); then continued on v2 for a few epochs
(`--warm-start MODEL --epochs N`) against a cold model trained on v2 from nothing.

Writes its section of benchmarks/results-lifecycle-finetune.md. Skips (exit 0) when the data is absent.

    .venv/bin/python benchmarks/lifecycle_finetune.py                 # about 15 minutes on 2 cores
    .venv/bin/python benchmarks/lifecycle_finetune.py --seeds 1
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
from common import REPO, machine_lines, markdown_table, movielens_config, movielens_dir  # noqa: E402
from movielens import genre_split, genre_table  # noqa: E402

OUT = REPO / "benchmarks" / "results-lifecycle-finetune.md"
CUT = 0.8            # time percentile: v1 sees the ratings before it
MIN_COUNT = 20       # anchors of the script's alignment: movies seen this often in both versions
FRACTION = 0.25      # share of v1's movies labeled
WARM_EPOCHS = 5
TITLE = ("# A fine-tuned model across a retrain of its vectors (MovieLens ml-latest-small)\n\n"
         "Written by benchmarks/lifecycle_finetune.py, one section per --aligned-by.\n")
ROWS = ("v1 (baseline)", "v2 aligned, swapped in", "v2 unaligned, swapped in",
        f"warm start on v2 aligned, {WARM_EPOCHS} epochs", f"warm start on v2 unaligned, {WARM_EPOCHS} epochs",
        "cold on v2 (defaults)")


def pretrain_vectors(tmp: Path, aligned_by: str) -> dict:
    """-> {"v1": dir, "v2 aligned": dir, "v2 unaligned": dir} and the alignment's numbers."""
    import polars as pl

    from catvec.pretraining.pipeline import pretrain

    ratings = pl.read_csv(movielens_dir() / "ratings.csv", schema_overrides={"movieId": pl.Utf8})
    cut = float(np.quantile(ratings["timestamp"].to_numpy(), CUT))
    older = ratings.filter(pl.col("timestamp") < cut)
    v1 = pretrain(movielens_config(out=str(tmp / "vectors"), seed=1), events=older).path
    if aligned_by == "catvec":   # into v1's OUT: the new version is aligned to its parent by pretrain
        result = pretrain(movielens_config(out=str(tmp / "vectors"), seed=2, force=True), events=ratings)
        aligned = result.path
        unaligned = pretrain(movielens_config(out=str(tmp / "fresh"), seed=2), events=ratings).path
        if not any("align" in key for key in result.manifest):
            print("warning: this catvec's pretrain records no alignment; use --aligned-by script",
                  file=sys.stderr)
    else:
        unaligned = pretrain(movielens_config(out=str(tmp / "fresh"), seed=2), events=ratings).path
        aligned = procrustes(v1, unaligned, tmp / "aligned")
    found = {"v1": v1, "v2 aligned": aligned, "v2 unaligned": unaligned}
    return found, {"cut": cut, "older_events": older.height, "events": ratings.height,
                   "cosine": {k: median_cosine(v1, found[k]) for k in ("v2 aligned", "v2 unaligned")}}


def cached_vectors(work: Path, aligned_by: str) -> tuple[dict, dict]:
    """pretrain_vectors, or what an earlier run with the same --work and --aligned-by left."""
    import json

    record = work / f"vectors-{aligned_by}.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        return {k: Path(v) for k, v in saved["vectors"].items()}, {**saved["info"], "reused": True}
    vectors, info = pretrain_vectors(work / aligned_by, aligned_by)
    record.write_text(json.dumps({"vectors": {k: str(v) for k, v in vectors.items()}, "info": info}))
    return vectors, info


def procrustes(reference: Path, source: Path, out: Path) -> Path:
    """source's vectors rotated onto reference's (orthogonal Procrustes on frequent shared keys)."""
    from catvec.base.vectors import Vectors, load_vectors, save_vectors

    ref, src = load_vectors(reference), load_vectors(source)
    a, b = anchors(ref, src)
    u, _, vt = np.linalg.svd(src.matrix[b].T.astype(np.float64) @ ref.matrix[a].astype(np.float64))
    rotation = u @ vt                                                # (dim, dim): src @ rotation ~ ref
    context = None if src.context is None else (src.context @ rotation).astype(np.float32)
    return save_vectors(Vectors(keys=src.keys, matrix=(src.matrix @ rotation).astype(np.float32),
                                context=context, counts=src.counts), out,
                        {"kind": "pretrain", "aligned_to": str(reference.name), "anchors": int(len(a))})


def anchors(ref, src) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the keys both know with a training count of at least MIN_COUNT in each."""
    at = {k: i for i, k in enumerate(src.keys)}
    pairs = [(i, at[k]) for i, k in enumerate(ref.keys)
             if k in at and ref.counts[i] >= MIN_COUNT and src.counts[at[k]] >= MIN_COUNT]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def median_cosine(reference: Path, other: Path) -> float:
    """Median cosine of the same movie in both versions (anchor movies)."""
    from catvec.base.scoring import unit_rows
    from catvec.base.vectors import load_vectors

    ref, oth = load_vectors(reference), load_vectors(other)
    a, b = anchors(ref, oth)
    return float(np.median((unit_rows(ref.matrix[a]) * unit_rows(oth.matrix[b])).sum(axis=1)))


def finetune_run(table, out: Path, seed: int, **settings) -> tuple[dict, float]:
    """-> (metrics.json of the new model, seconds)."""
    from catvec.finetuning.config import FinetuneConfig
    from catvec.finetuning.pipeline import finetune

    base = dict(target="genre", cat_cols="movieId", cont_cols="", pretrained_cols="movieId", task="multiclass",
                split_col="split", metric="macro_f1", seed=seed, out=str(out))
    started = time.perf_counter()
    result = finetune(FinetuneConfig(**{**base, **settings}), table=table)
    return result.metrics, time.perf_counter() - started


def one_seed(vectors: dict, table, seed: int, tmp: Path) -> dict:
    """Test accuracy and macro-F1 of each row of ROWS on one split."""
    import polars as pl

    frame = table.with_columns(split=pl.Series(genre_split(table.height, FRACTION, seed)))
    models = tmp / f"models-{seed}"
    base, base_s = finetune_run(frame, models, seed, vectors=str(vectors["v1"]))
    first = str((models / "latest").resolve())
    runs = {ROWS[0]: (base, base_s)}
    for row, key in ((ROWS[0] + " swapped", "v1"), (ROWS[1], "v2 aligned"), (ROWS[2], "v2 unaligned")):
        runs[row] = finetune_run(frame, models, seed, vectors=str(vectors[key]), warm_start=first, epochs=0)
    for row, key in ((ROWS[3], "v2 aligned"), (ROWS[4], "v2 unaligned")):
        runs[row] = finetune_run(frame, models, seed, vectors=str(vectors[key]), warm_start=first,
                                 epochs=WARM_EPOCHS, mode="finetune", class_weight="balanced")
    runs[ROWS[5]] = finetune_run(frame, models, seed, vectors=str(vectors["v2 aligned"]))
    same = runs[ROWS[0] + " swapped"][0]["test"]
    # predictions, not the loss: the model's loss was class-weighted by its --auto choice
    gap = max(abs(same[k] - base["test"][k]) for k in ("test_accuracy", "test_macro_f1", "test_log_loss"))
    assert gap < 1e-6, f"v1 swapped into its own model must score as the model (off by {gap})"
    return {row: {"accuracy": m["test"]["test_accuracy"], "macro_f1": m["test"]["test_macro_f1"],
                  "epochs": total_epochs(m), "seconds": s,
                  "chosen": m.get("auto", {}).get("chosen")}
            for row, (m, s) in runs.items() if row in ROWS}


def total_epochs(metrics: dict) -> int:
    """Epochs trained by a run, every --auto candidate included (the L-BFGS head counts one;
    epochs 0, the model scored as it is, none)."""
    auto = metrics.get("auto")
    if not auto:
        return sum(1 for row in metrics["history"] if row["epoch"] >= 1)
    return sum(c["best_epoch"] for c in auto["candidates"])


def write_section(aligned_by: str, lines: list[str]) -> None:
    """Replace this --aligned-by's section of OUT (the other one stays)."""
    begin, end = f"<!-- aligned-by-{aligned_by}:begin -->", f"<!-- aligned-by-{aligned_by}:end -->"
    text = OUT.read_text(encoding="utf-8") if OUT.is_file() else TITLE
    section = "\n".join([begin, *lines, end])
    if begin in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    OUT.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--aligned-by", choices=("script", "catvec"), default="script",
                   help="who rotates v2 into v1's space: this script (Procrustes) or catvec pretrain itself")
    p.add_argument("--work", default="", help="keep the vectors in this directory and reuse them on the next "
                                              "run (default: a temporary directory)")
    args = p.parse_args(argv)
    if movielens_dir() is None:
        return 0
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="catvec-lifecycle-") as tmp:
        tmp = Path(args.work or tmp)
        vectors, info = cached_vectors(tmp, args.aligned_by)
        from catvec.base.vectors import load_vectors

        v1_keys = set(load_vectors(vectors["v1"]).keys)
        table = genre_table()
        table = table.filter(table["movieId"].is_in(list(v1_keys)))
        found = []
        for seed in range(args.seeds):
            found.append(one_seed(vectors, table, seed, tmp))
            print(f"  seed {seed}: " + ", ".join(f"{r}: {v['macro_f1']:.4f}" for r, v in found[-1].items()),
                  file=sys.stderr, flush=True)
    base_s = np.mean([f[ROWS[0]]["seconds"] for f in found])
    rows = []
    for row in ROWS:
        acc, f1 = [f[row]["accuracy"] for f in found], [f[row]["macro_f1"] for f in found]
        rows.append([row, f"{np.mean(acc):.4f} ± {np.std(acc):.4f}", f"{np.mean(f1):.4f} ± {np.std(f1):.4f}",
                     f"{np.mean(acc) / np.mean([f[ROWS[0]]['accuracy'] for f in found]):.2f}",
                     f"{np.mean(f1) / np.mean([f[ROWS[0]]['macro_f1'] for f in found]):.2f}",
                     f"{np.mean([f[row]['epochs'] for f in found]):.0f}",
                     f"{np.mean([f[row]['seconds'] for f in found]) / base_s:.2f}"])
    command = f".venv/bin/python benchmarks/lifecycle_finetune.py --seeds {args.seeds} --aligned-by {args.aligned_by}"
    cos = info["cosine"]
    lines = [f"## v2 aligned by {args.aligned_by}", "", *machine_lines(), f"- command: `{command}`", "",
             f"v1: `catvec pretrain` (defaults, seed 1) on the {info['older_events']:,} ratings before the "
             f"{CUT:.0%} time percentile; v2: on all {info['events']:,} ratings, seed 2. v2 aligned by "
             f"{'orthogonal Procrustes in this script' if args.aligned_by == 'script' else 'catvec pretrain'} "
             f"(anchors: movies seen >= {MIN_COUNT} times in both). Median cosine of the same movie, v1 vs v2: "
             f"{cos['v2 unaligned']:.3f} unaligned, {cos['v2 aligned']:.3f} aligned.", "",
             f"Genre (first listed) from movieId alone, {table.height} movies v1 knows; {FRACTION:.0%} labeled "
             f"(a fifth of them validation), the rest test. The model is `catvec finetune --metric macro_f1` "
             f"(defaults: --auto) on v1. Swapped in: `--warm-start MODEL --epochs 0` (no training). Warm start: "
             f"`--warm-start MODEL --epochs {WARM_EPOCHS} --mode finetune --class-weight balanced`. Cold: the defaults on v2 aligned "
             f"(alignment does not matter to a model trained from nothing). Test metrics, mean ± std over "
             f"{args.seeds} seed(s); epochs: epochs trained (--auto runs: every candidate's best epoch summed); "
             f"time: wall time relative to training the v1 model, same script.", "",
             *markdown_table(["model / vectors", "test accuracy", "test macro-F1", "accuracy vs baseline",
                              "macro-F1 vs baseline", "epochs", "time vs baseline"], rows), "",
             "Check in every seed: v1 swapped into its own model scores exactly as the model.", "",
             f"Run time: {time.perf_counter() - started:.0f}s"
             + (" (vectors from an earlier run with the same --work)." if info.get("reused") else ".")]
    write_section(args.aligned_by, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

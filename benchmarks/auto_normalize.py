"""Does `--auto` searching the MLPs on rows as trained (normalize none) beside unit rows
cost the genre task? Paired runs on one set of vectors, MovieLens ml-latest-small.

The genre task of benchmarks/movielens.py (first genre of a movie from movieId alone), the
shares of labeled movies where the MLPs join `--auto` (10%, 25%; at 5% only the linear
heads run, unchanged), seeds 0..2: test macro-F1 of `catvec finetune --metric macro_f1`
with the MLP candidates on unit rows only (the grid before) and on unit rows or rows as
trained (the grid now), same vectors, same splits.

    .venv/bin/python benchmarks/auto_normalize.py          # writes benchmarks/auto_normalize.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_lines, markdown_table, movielens_config, movielens_dir  # noqa: E402

OUT = REPO / "benchmarks" / "auto_normalize.md"
FRACTIONS = (0.10, 0.25)
GRIDS = {"unit rows only (before)": ("unit",), "unit or as trained (now)": ("unit", "none")}


def genre_f1(vectors: Path, table, fraction: float, seed: int, out: Path) -> tuple[float, str]:
    import polars as pl

    from catvec.finetuning.config import FinetuneConfig
    from catvec.finetuning.pipeline import finetune
    from movielens import genre_split

    frame = table.with_columns(split=pl.Series(genre_split(table.height, fraction, seed)))
    cfg = FinetuneConfig(vectors=str(vectors), target="genre", cat_cols="movieId", cont_cols="",
                         pretrained_cols="movieId", task="multiclass", split_col="split", metric="macro_f1",
                         seed=seed, out=str(out), keep=1)
    m = finetune(cfg, table=frame).metrics
    chosen = m["auto"]["chosen"]
    return m["test"]["test_macro_f1"], f"{chosen['hidden'] or 'linear'} {chosen['mode']} {chosen['normalize']}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args(argv)
    if movielens_dir() is None:
        return 0
    from catvec.finetuning import auto
    from catvec.pretraining.pipeline import pretrain
    from movielens import genre_table

    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="catvec-norm-") as tmp:
        tmp = Path(tmp)
        vectors = pretrain(movielens_config(out=str(tmp / "v"))).path
        table = genre_table()
        for fraction in FRACTIONS:
            means = []
            for label, grid in GRIDS.items():
                auto.MLP_NORMALIZE = grid
                scores = []
                for seed in range(args.seeds):
                    f1, chosen = genre_f1(vectors, table, fraction, seed, tmp / "ft")
                    scores.append(f1)
                    print(f"  {fraction:.0%} {label} seed {seed}: {f1:.4f} ({chosen})", file=sys.stderr, flush=True)
                means.append(float(np.mean(scores)))
                rows.append([f"{fraction:.0%}", label, f"{means[-1]:.4f} ± {np.std(scores):.4f}"])
            rows[-1].append(f"{means[1] / means[0]:.3f}x")
            rows[-2].append("")
    lines = ["# --auto: MLPs on unit rows, or on unit rows and rows as trained (genre task)", "", *machine_lines(),
             f"- command: `.venv/bin/python benchmarks/auto_normalize.py --seeds {args.seeds}`", "",
             f"Test macro-F1 of `catvec finetune --metric macro_f1` on the genre task of benchmarks/movielens.py, "
             f"mean ± std over {args.seeds} seed(s), one set of vectors, the same splits for both grids.", "",
             *markdown_table(["labeled", "--auto MLP candidates", "macro-F1", "now / before"], rows), "",
             f"Run time: {time.perf_counter() - started:.0f}s."]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

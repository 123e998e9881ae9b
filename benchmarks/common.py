"""Shared helpers of the benchmark scripts: where MovieLens lives, the machine, tables."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# MovieLens' terms forbid redistributing it: it is read from beside the repository, never copied in.
MOVIELENS = REPO.parent / "shared" / "data" / "ml-latest-small"


def movielens_dir(required: bool = True) -> Path | None:
    """The ml-latest-small directory, or None (with a message) when it is absent."""
    if (MOVIELENS / "ratings.csv").is_file():
        return MOVIELENS
    if required:
        print(f"skipped: MovieLens ml-latest-small not found at ../shared/data/ml-latest-small "
              f"(relative to the repository root); nothing to do", file=sys.stderr)
    return None


def movielens_config(**overrides):
    """PretrainConfig for ml-latest-small ratings: each user's ratings in time order."""
    from catvec.pretraining.config import PretrainConfig

    base = dict(events=str(MOVIELENS / "ratings.csv"), user_col="userId", item_col="movieId", time_col="timestamp",
                vector_map=False)
    base.update(overrides)
    return PretrainConfig(**base)


def machine_lines() -> list[str]:
    """Machine, library versions and date, for the header of each results table."""
    import gensim
    import numpy
    import polars

    import catvec

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = {"catvec": catvec.__version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "polars": polars.__version__, "gensim": gensim.__version__}
    try:
        import pandas

        libs["pandas"] = pandas.__version__
    except ImportError:
        pass
    load = ", load average {:.1f} / {:.1f} / {:.1f} (1/5/15 min) at the end".format(*os.getloadavg()) \
        if hasattr(os, "getloadavg") else ""
    return [f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}{load}",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in libs.items())]


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def record_seed(scores: dict, key, found: dict, runs, label: str, started: float) -> None:
    """Append one seed's value of each run to scores[(key, run)] and print a progress line
    with what --auto chose (found["chosen"])."""
    import time

    for run in runs:
        scores.setdefault((key, run), []).append(found[run])
    chosen = found.get("chosen") or {}
    print(f"  {label}: " + ", ".join(f"{r} {found[r]:.4f}" for r in runs)
          + f"; auto chose {chosen.get('hidden') or 'linear'} {chosen.get('mode')} "
            f"({time.perf_counter() - started:.1f}s)", file=sys.stderr, flush=True)

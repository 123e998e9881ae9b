"""Which pretrained vectors should start a finetune: input, context or both side by side?

MovieLens ml-latest-small genre from movieId alone (the task of benchmarks/movielens.py,
same splits and seeds): vectors pretrained once with catvec's defaults, then
`catvec finetune --pretrained-input input | context | concat --metric macro_f1 --compare`
at 5 / 10 / 25% labeled. Test macro-F1 of the defaults and of the linear probe, mean over
the seeds. Writes its table into docs/finetune.md between markers.

    .venv/bin/python benchmarks/pretrained_input.py        # about 5-8 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_lines, markdown_table, movielens_config, movielens_dir  # noqa: E402
from movielens import FRACTIONS, genre_scores, genre_table  # noqa: E402
from vectors_quality import write_between_markers  # noqa: E402

DOC = REPO / "docs" / "finetune.md"
MARKERS = ("<!-- pretrained-input:begin -->", "<!-- pretrained-input:end -->")
INPUTS = ("input", "context", "concat")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if movielens_dir() is None:
        return 0
    from catvec.pretraining.pipeline import pretrain

    table = genre_table()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vectors = pretrain(movielens_config(out=str(Path(tmp) / "full"))).path
        for which in INPUTS:
            cells = [which]
            for fraction in FRACTIONS:
                found = [genre_scores(vectors, table, fraction, seed, Path(tmp) / "ft", pretrained_input=which)
                         for seed in range(args.seeds)]
                cells.append(f"{np.mean([f['defaults'] for f in found]):.4f} / "
                             f"{np.mean([f['linear_probe'] for f in found]):.4f}")
                print(f"  {which} {fraction:.0%}: {cells[-1]}", file=sys.stderr, flush=True)
            rows.append(cells)
    text = "\n".join(machine_lines() + [f"- seeds 0-{args.seeds - 1}; cells: defaults / linear probe test macro-F1", "",
                                        *markdown_table(["--pretrained-input", *[f"{f:.0%} labeled" for f in FRACTIONS]],
                                                        rows),
                                        "", "Reproduce: `.venv/bin/python benchmarks/pretrained_input.py`."])
    print(text)
    write_between_markers(DOC, text, MARKERS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

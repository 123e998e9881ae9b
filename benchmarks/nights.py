"""Nights nobody watches: does the promotion gate pass every normal weekly retrain and
refuse every bad night, each with a clear line?

MovieLens ml-latest-small ratings (kept outside the repository, ../shared). The first
night trains on every rating older than the last nine weeks (settings tuned once); each
of eight normal nights adds the next week of ratings and inherits those settings (the
default nightly run). Then the bad nights, each on night 8's ratings unless said, each
against the same latest (a bad night that gets through is rolled back with
`catvec promote` so the next one meets the same parent):

- renamed: 75% of the distinct items get a new id (an export with a new key scheme);
- flood: one new item carrying half of all events (a bot, a default value);
- min-count drop: `--min-count 5`, which loses most keys;
- shuffled: the item column permuted across rows (no signal left);
- tampered noise: the parent's noise.json edited to claim a tiny seed-noise overlap
  (so any drift would look small), then the shuffled night again;
- late file: next week's file replaced by its shuffled copy after the run took its
  checksum and before it read the events (the reading function is wrapped here).

Prints one table row per night (each check's figure against its threshold, the decision
and its line) and writes benchmarks/results-nights.md and the table in docs/lifecycle.md.

    .venv/bin/python benchmarks/nights.py          # about 20 minutes on 2 busy cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_lines, markdown_table, movielens_config, movielens_dir  # noqa: E402
from vectors_quality import write_between_markers  # noqa: E402

RESULTS = REPO / "benchmarks" / "results-nights.md"
DOC = REPO / "docs" / "lifecycle.md"
MARKERS = ("<!-- nights:begin -->", "<!-- nights:end -->")
WEEK = 7 * 86400
NORMAL_NIGHTS = 8
CHECKS = ("drift", "lost_keys", "lost_traffic", "new_traffic", "new_key", "quality")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=0, help="fixed epochs (0: chosen by the size rule)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results-nights.md alone")
    args = parser.parse_args()
    if movielens_dir() is None:
        return 0
    import pandas as pd

    ratings = pd.read_csv(movielens_dir() / "ratings.csv")
    end = int(ratings["timestamp"].max())
    start = end - (NORMAL_NIGHTS + 1) * WEEK
    work = Path(tempfile.mkdtemp(prefix="catvec-nights-"))
    rows = []
    t0 = time.perf_counter()
    try:
        out = work / "out"
        extra = {"epochs": args.epochs} if args.epochs else {}
        config = lambda path, **kw: movielens_config(events=str(path), out=str(out), **extra, **kw)  # noqa: E731

        for night in range(NORMAL_NIGHTS + 1):
            frame = ratings[ratings["timestamp"] <= start + night * WEEK]
            path = write(work, f"night{night}.csv", frame)
            added = len(frame) - (len(ratings[ratings["timestamp"] <= start + (night - 1) * WEEK]) if night else 0)
            rows.append(play(f"normal {night}" if night else "first", f"+{added:,} events" if night else
                             f"{len(frame):,} events", config(path)))
        parent = latest(out)
        last = ratings[ratings["timestamp"] <= start + NORMAL_NIGHTS * WEEK]
        rng = np.random.default_rng(0)

        items = last["movieId"].unique()
        renamed_ids = set(rng.choice(items, int(0.75 * len(items)), replace=False).tolist())
        renamed = last.assign(movieId=[f"r{m}" if m in renamed_ids else str(m) for m in last["movieId"]])
        rows.append(play("renamed", "75% of items renamed", config(write(work, "renamed.csv", renamed)), out, parent))

        flood = last.sample(n=len(last), replace=True, random_state=1).assign(movieId=999999999)
        flooded = pd.concat([last, flood]).sort_values("timestamp", kind="stable")
        rows.append(play("flood", "one new item, 50% of the input events", config(write(work, "flood.csv", flooded)), out, parent))

        night8 = work / f"night{NORMAL_NIGHTS}.csv"
        rows.append(play("min-count drop", "--min-count 5", config(night8, min_count=5), out, parent))

        shuffled = last.assign(movieId=rng.permutation(last["movieId"].to_numpy()))
        shuffled_path = write(work, "shuffled.csv", shuffled)
        rows.append(play("shuffled", "items permuted across rows", config(shuffled_path), out, parent))

        noise = out / parent / "noise.json"
        tampered = json.loads(noise.read_text(encoding="utf-8"))
        tampered["anchors"]["overlap"] = 0.01
        noise.write_text(json.dumps(tampered), encoding="utf-8")
        rows.append(play("tampered noise", "noise.json says overlap 0.01; shuffled items", config(shuffled_path), out,
                         parent))
        rows[-1]["note"] = noise_note(noise)

        late = write(work, "late.csv", ratings[ratings["timestamp"] <= start + (NORMAL_NIGHTS + 1) * WEEK])
        late_bytes = write(work, "late-shuffled.csv", shuffled_late(ratings, start, rng)).read_bytes()
        with swapped_before_read(late, late_bytes) as seen:
            rows.append(play("late file", "next week's file swapped for a shuffled one mid-run", config(late), out,
                             parent))
        rows[-1]["note"] = late_note(out, rows[-1], seen)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - t0
    for row in rows:  # the temp dir is this machine's, not part of the result
        row["line"] = row["line"].replace(str(work), "<workdir>")

    text = "\n".join(report(rows, args.epochs, seconds))
    print(text)
    if not args.no_write:
        RESULTS.write_text("# Nights: the promotion gate on normal and bad retrains\n\n" + text + "\n", encoding="utf-8")
        write_between_markers(DOC, text, MARKERS)
    return 0


def write(work: Path, name: str, frame) -> Path:
    path = work / name
    frame.to_csv(path, index=False)
    return path


def shuffled_late(ratings, start: int, rng):
    frame = ratings[ratings["timestamp"] <= start + (NORMAL_NIGHTS + 1) * WEEK]
    return frame.assign(movieId=rng.permutation(frame["movieId"].to_numpy()))


def latest(out: Path) -> str:
    from catvec.base.store import VersionStore

    return VersionStore(out).latest_name()


def play(name: str, what: str, cfg, out: Path | None = None, parent: str | None = None) -> dict:
    """One night: pretrain, its checks and decision; a bad night that got through is rolled back."""
    from catvec.base.errors import CatvecError
    from catvec.base.store import promote
    from catvec.pretraining.pipeline import pretrain

    t = time.perf_counter()
    try:
        result = pretrain(cfg)
    except CatvecError as exc:  # refused before any version was written (e.g. the input changed mid-run)
        print(f"{name}: refused (input) {exc}", file=sys.stderr, flush=True)
        return {"night": name, "what": what, "decision": "refused (input)", "line": str(exc), "checks": {},
                "seconds": time.perf_counter() - t}
    gate = result.gate or {}
    decision = "first" if not gate else "promoted" if result.promoted else "refused"
    if gate.get("forced"):
        decision = "forced"
    line = "; ".join(gate.get("reasons") or ([gate["held"]] if gate.get("held") else []))
    row = {"night": name, "what": what, "decision": decision, "line": line, "checks": gate.get("checks") or {},
           "seconds": time.perf_counter() - t, "version": result.version}
    print(f"{name}: {decision} {line}", file=sys.stderr, flush=True)
    if out is not None and result.promoted:
        promote(out, parent)  # the next bad night meets the same parent
    return row


class swapped_before_read:
    """Within the block, the first read of the events by the pipeline replaces `path`'s bytes
    with `other` first: after the checksum was taken, before the read (a late export)."""

    def __init__(self, path: Path, other: bytes):
        self.path, self.other, self.seen = path, other, {}

    def __enter__(self):
        from catvec.base.fingerprint import file_sha256
        from catvec.pretraining import pipeline

        self.original = pipeline.read_events_table

        def late_read(cfg, events=None):
            if not self.seen:
                self.seen["before"] = file_sha256(self.path)
                self.path.write_bytes(self.other)
                self.seen["after"] = file_sha256(self.path)
            return self.original(cfg, events)

        pipeline.read_events_table = late_read
        return self.seen

    def __exit__(self, *exc):
        from catvec.pretraining import pipeline

        pipeline.read_events_table = self.original
        return False


def noise_note(noise: Path) -> str:
    stored = json.loads(noise.read_text(encoding="utf-8"))
    return f"noise.json afterwards: anchor overlap {stored['anchors']['overlap']} (measured again, the edit not trusted)" \
        if stored["anchors"]["overlap"] != 0.01 else "noise.json still holds the edited 0.01"


def late_note(out: Path, row: dict, seen: dict) -> str:
    from catvec.base.manifest import read_manifest

    if "version" not in row or not seen:
        return "the swap did not happen" if not seen else ""
    recorded = read_manifest(out / row["version"])["input"]["checksum"].split(":")[-1]
    trained = seen["after"]
    return (f"the manifest records sha256 {recorded[:12]}, the bytes read were {trained[:12]}: "
            f"{'the same' if recorded == trained else 'NOT the bytes trained on'}")


def report(rows: list[dict], epochs: int, seconds: float) -> list[str]:
    header = ["night", "what", *CHECKS, "decision", "line"]
    table = []
    for row in rows:
        cells = [row["night"], row["what"]]
        for name in CHECKS:
            c = row["checks"].get(name)
            if not c:
                cells.append("-")
                continue
            figure = "cannot compare" if c["figure"] is None else f"{c['figure']:.3g}"
            cells.append(f"{figure} / {c['threshold']:g}{'' if c['passed'] else ' **FAIL**'}")
        line = row["line"] + (f" ({row['note']})" if row.get("note") else "")
        cells += [row["decision"], line.replace("|", "/")]
        table.append(cells)
    normal = [r for r in rows if r["night"].startswith("normal")]
    bad = [r for r in rows if not r["night"].startswith(("normal", "first"))]
    lines = [f"`python benchmarks/nights.py{' --epochs ' + str(epochs) if epochs else ''}`: MovieLens "
             f"ml-latest-small, the first night every rating before the last {NORMAL_NIGHTS + 1} weeks, then one "
             f"week more each night; default settings (tuned on the first night, inherited after), "
             f"{'epochs ' + str(epochs) if epochs else 'epochs by the size rule'}. Each check: figure / threshold "
             f"(drift: overlap ratio to seed noise, at least; quality: at least; the shares: at most).", "",
             "Quality is the change of validation HR@10 against the parent's on the same users, in standard "
             "errors (at least -2). The late file's run reads a file swapped after its checksum was taken: "
             "the note says whether the manifest's checksum is that of the bytes trained on.", "",
             f"Normal nights promoted: {sum(r['decision'] == 'promoted' for r in normal)} of {len(normal)}. "
             f"Bad nights refused: {sum(r['decision'].startswith('refused') for r in bad)} of {len(bad)}. "
             f"Whole run {seconds:.0f}s.", ""]
    lines += markdown_table(header, table)
    lines += ["", *machine_lines()]
    return lines


if __name__ == "__main__":
    sys.exit(main())

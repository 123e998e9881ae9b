"""What a version with a parent costs on top of a plain training, and whether the cheap
seed-noise baseline judges as the full one does.

1. ml-latest-small, split by time at the 80th percentile of timestamps: the older slice is
   the parent (`--no-tune`, so the run is short; its fallback settings are what every
   child inherits), every event the child. Timed in this one run:
   (a) a child run with default settings, the parent's noise not yet measured (the seed
       noise on a `noise_sample` share of the parent's sequences, two seeds);
   (a') the same with `noise_sample 1` (a second full training: the figure before);
   (b) a plain `--no-tune` training of every event with the settings the child used.
   Target (a - b) / b <= 0.5. The cheap anchor overlap against the full one, and the
   gate's decisions with each on the normal retrain and on a retrain with the item column
   shuffled (the same noise.json copied in, so only the baseline differs).
2. Synthetic vectors of 100k keys: a training (2M tokens) against align + drift of a child
   (the parent rotated, perturbed, 2% of keys dropped and 2% new), with the compare's
   peak memory (tracemalloc) beside the size of one keys x dim matrix. Target < 10%.

Writes its tables into docs/lifecycle.md between markers.

    .venv/bin/python benchmarks/lifecycle_cost.py       # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_lines, markdown_table, movielens_config, movielens_dir  # noqa: E402
from lifecycle import SPLIT_QUANTILE, write_inputs  # noqa: E402
from vectors_quality import write_between_markers  # noqa: E402

DOC = REPO / "docs" / "lifecycle.md"
MARKERS = ("<!-- lifecycle-cost:begin -->", "<!-- lifecycle-cost:end -->")
INHERITED = ("window", "epochs", "ns_exponent", "sample", "scorer", "min_support")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="keys of the synthetic compare")
    parser.add_argument("--events", type=int, default=300_000, help="generated events of the second agreement check")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/lifecycle.md alone")
    args = parser.parse_args()
    lines = ["Produced by `.venv/bin/python benchmarks/lifecycle_cost.py`:", ""]
    parts = ([movielens_cost] if movielens_dir() is not None else []) + \
        [lambda: generated_agreement(args.events), lambda: synthetic_compare(args.keys)]
    for part in parts:
        found = part()
        print("\n".join(found), flush=True)  # each part as it is done
        lines += found
    text = "\n".join(lines + machine_lines())
    print("\n".join(machine_lines()))
    if not args.no_write:
        write_between_markers(DOC, text, MARKERS)
    return 0


# ---- 1. a child run on ml-latest-small -------------------------------------------------------

def movielens_cost() -> list[str]:
    from catvec.pretraining.pipeline import pretrain

    work = Path(tempfile.mkdtemp(prefix="catvec-lifecycle-cost-"))
    try:
        ratings, paths = write_inputs(work)

        def config(name: str, out: Path, **kw):
            return movielens_config(events=str(paths[name]), out=str(out), **kw)

        parent_out = work / "parent"
        pretrain(config("older", parent_out, seed=1, tune=False))
        parent = (parent_out / "latest").resolve().name
        runs, noise = {}, {}
        # (b) before and after the children: the mean evens out a load that changes during the run
        plain = [timed(pretrain, config("all", work / "plain-0", seed=2, tune=False, **inherited(parent_out, parent)))]
        for label, share in (("cheap", None), ("full", 1.0)):
            out = work / label
            shutil.copytree(parent_out, out, symlinks=True)
            kw = {} if share is None else {"noise_sample": share}
            runs[label] = timed(pretrain, config("all", out, seed=2, **kw))
            noise[label] = out / parent / "noise.json"
        plain.append(timed(pretrain, config("all", work / "plain-1", seed=2, tune=False, **inherited(parent_out, parent))))
        assert all(runs[name][1].manifest["params"][k] == plain[0][1].manifest["params"][k]
                   for name in runs for k in INHERITED), "the plain training must use the child's settings"
        for label in ("cheap", "full"):  # the shuffled retrain judged against each stored baseline
            out = work / f"shuffled-{label}"
            shutil.copytree(parent_out, out, symlinks=True)
            for name in ("noise.json", "noise.json.sha256"):
                shutil.copy(noise[label].parent / name, out / parent / name)
            kw = {} if label == "cheap" else {"noise_sample": 1.0}
            runs[f"shuffled-{label}"] = timed(pretrain, config("shuffled", out, seed=3, **kw))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cost_tables(runs, plain, int((ratings["timestamp"] < ratings["timestamp"].quantile(SPLIT_QUANTILE)).sum()), len(ratings))


def inherited(out: Path, parent: str) -> dict:
    """The settings a child of `parent` keeps (docs/lifecycle.md: same settings as the parent)."""
    from catvec.base.manifest import read_manifest

    params = read_manifest(out / parent, verify=False)["params"]
    return {name: params[name] for name in INHERITED}


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def cost_tables(runs: dict, plains: list, n_older: int, n_all: int) -> list[str]:
    b = sum(seconds for seconds, _ in plains) / len(plains)
    rows = []
    for label, name in (("(a) child, default (`noise_sample` 0.2)", "cheap"), ("(a') child, `noise_sample 1`", "full")):
        seconds, result = runs[name]
        t = result.manifest["timings"]
        extra = t.get("compare_seconds", 0) + t.get("validate_seconds", 0)  # compare_seconds includes the noise
        rows.append([label, round(seconds, 1), round(t.get("train_seconds", 0), 1), round(t.get("noise_seconds", 0), 1),
                     round(t.get("compare_seconds", 0) - t.get("noise_seconds", 0), 2),
                     round(t.get("validate_seconds", 0), 2), f"{(seconds - b) / b:+.2f}",
                     f"{extra / t['train_seconds']:.2f}"])
    rows.append(["(b) plain `--no-tune`, same settings (mean of a run before and after the children: "
                 + " / ".join(f"{seconds:.1f}" for seconds, _ in plains) + ")", round(b, 1),
                 round(sum(p.manifest["timings"]["train_seconds"] for _, p in plains) / len(plains), 1), "", "", "", "0", ""])
    lines = [f"Parent: the older {n_older:,} ratings (`--no-tune`); child: all {n_all:,}. Seconds of the whole "
             f"`pretrain` call; overhead = (a - b) / b, target <= 0.5; extra / own training = (seed noise + align + "
             f"drift + validation) / the child's own training seconds, the same ratio inside one run, which a "
             f"changing load moves less.", ""]
    lines += markdown_table(["run", "seconds", "training", "seed noise", "align + drift", "validation", "overhead",
                             "extra / own training"], rows)
    drift = {name: runs[name][1].manifest["drift"] for name in runs}
    rows = []
    for label, name in (("normal retrain", ""), ("items shuffled", "shuffled-")):
        for how in ("cheap", "full"):
            r = runs[name + how][1]
            n = drift[name + how]["noise"]
            measured = n.get("measured", {})
            rows.append([label, f"{measured.get('method', 'full')} ({measured.get('sample', 1.0):g})",
                         n["anchors"]["overlap"], n["anchors"]["keys"], drift[name + how]["anchors"]["overlap"],
                         drift[name + how].get("overlap_ratio"), "promoted" if r.promoted else "refused"])
    cheap, full = drift["cheap"]["noise"]["anchors"]["overlap"], drift["full"]["noise"]["anchors"]["overlap"]
    lines += ["", "Seed-noise baseline, cheap against full, and the gate (`gate_drift` 0.5) with each:", ""]
    lines += markdown_table(["child", "noise measured", "noise overlap@10", "noise anchors", "child overlap@10",
                             "ratio", "gate"], rows)
    lines += ["", f"Cheap minus full anchor overlap: {cheap - full:+.4f} ({(cheap - full) / full:+.1%}).", ""]
    print(json.dumps({"cheap": drift["cheap"]["noise"], "full": drift["full"]["noise"]}, indent=1), file=sys.stderr)
    return lines


def generated_agreement(n_events: int) -> list[str]:
    """Cheap against full seed noise on a second data set: generated events (generate.py)."""
    from generate import generate

    from catvec.pretraining.config import Lineage, PretrainConfig, SkipGram
    from catvec.base.store import VersionStore
    from catvec.pretraining.noise import seed_noise
    from catvec.pretraining.parents import load_parent, parent_corpus
    from catvec.pretraining.pipeline import pretrain

    work = Path(tempfile.mkdtemp(prefix="catvec-noise-agreement-"))
    try:
        events = generate(work / "events.csv", n_events, n_items=n_events // 60, n_users=n_events // 60)
        cfg = PretrainConfig(events=str(events), out=str(work / "out"), user_col="user_id", item_col="item_id",
                             time_col="timestamp", tune=False, vector_map=False)
        pretrain(cfg)
        store = VersionStore(cfg.out)
        parent, manifest = load_parent(store, store.latest_name(), Lineage.of(cfg), cfg.gate, cfg.dim)
        parent_cfg, corpus = parent_corpus(store, manifest)
        figures = {}
        for share in (PretrainConfig.noise_sample, 1.0):
            seconds, noise = timed(seed_noise, corpus, SkipGram.of(parent_cfg), parent_cfg.min_count,
                                   parent_cfg.align_min_count, parent, share)
            figures[share] = (seconds, noise["anchors"]["overlap"], noise["anchors"]["keys"], noise["measured"]["method"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cheap, full = figures[PretrainConfig.noise_sample][1], figures[1.0][1]
    lines = [f"The same agreement on generated events (`benchmarks/generate.py`, {n_events:,} events, "
             f"{corpus.stats.get('tokens', 0):,} tokens, {parent_cfg.epochs} epochs):", ""]
    lines += markdown_table(["noise measured", "seconds", "anchor overlap@10", "anchors"],
                            [[f"{f[3]} ({share:g})", round(f[0], 1), f[1], f[2]] for share, f in figures.items()])
    lines += ["", f"Cheap minus full anchor overlap: {cheap - full:+.4f} ({(cheap - full) / full:+.1%}).", ""]
    return lines


# ---- 2. align + drift at 100k keys -----------------------------------------------------------

def synthetic_compare(n_keys: int) -> list[str]:
    from catvec.pretraining.config import PretrainConfig, SkipGram
    from catvec.base.vectors import Vectors
    from catvec.pretraining.skipgram import train_vectors

    work = Path(tempfile.mkdtemp(prefix="catvec-compare-"))
    try:
        corpus = synthetic_corpus(work / "corpus.txt", n_keys, tokens_per_key=20, seed=0)
        cfg = PretrainConfig(dim=64, window=5, epochs=3, ns_exponent=0.75, sample=0.0, tune=False, min_count=1, seed=1)
        started = time.perf_counter()
        parent, _ = train_vectors(corpus, SkipGram.of(cfg))
        train_seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    parent.counts = np.asarray(parent.counts)
    child = perturbed(parent, Vectors, seed=2)
    compare_seconds, (record, report) = timed(compare_child, child, parent)
    tracemalloc.start()  # a second pass for the memory: tracing slows the Python parts
    compare_child(child, parent)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    matrix_mb = len(parent) * parent.dim * 4 / 1e6
    lines = [f"Synthetic: {len(parent):,} keys x {parent.dim} dims, {corpus.stats['tokens']:,} tokens, 3 epochs, "
             f"window 5. Align + drift of a child (the parent rotated and perturbed, 2% of keys dropped, 2% new; "
             f"{record['anchors']:,} anchors, anchor overlap@10 {report['anchors']['overlap']}):", ""]
    lines += markdown_table(["step", "seconds", "share of the training", "peak memory (MB)", "x one keys x dim matrix"],
                            [["training", round(train_seconds, 1), "1", "", ""],
                             ["align + drift", round(compare_seconds, 2), f"{compare_seconds / train_seconds:.1%}",
                              round(peak / 1e6, 1), round(peak / 1e6 / matrix_mb, 1)]])
    return lines


def compare_child(child, parent):
    """What a run does with a parent once the noise is known: align, then drift."""
    from catvec.pretraining.alignment import align
    from catvec.pretraining.drift import drift_report

    noise = {"anchors": {"overlap": 0.7, "min_count": 20}, "bands": {}}
    aligned, record = align(child, parent, 20)
    return record, drift_report(aligned, parent, 20, noise)


def synthetic_corpus(path: Path, n_keys: int, tokens_per_key: int, seed: int):
    """Sequences of 20 keys that stay in one cluster of 50 keys with p=0.8: every key is
    seen about tokens_per_key times, so the vocabulary holds every key."""
    from catvec.pretraining.corpus import Corpus

    rng = np.random.default_rng(seed)
    length, cluster = 20, 50
    n_lines = n_keys * tokens_per_key // length
    home = rng.integers(n_keys // cluster, size=(n_lines, 1)) * cluster
    tokens = np.where(rng.random((n_lines, length)) < 0.8, home + rng.integers(cluster, size=(n_lines, length)),
                      rng.integers(n_keys, size=(n_lines, length)))
    np.savetxt(path, tokens, fmt="%d")
    stats = {"tokens": int(tokens.size), "lengths": {"max": length}}
    return Corpus(path=path, keys=[f"k{i}" for i in range(n_keys)], stats=stats)


def perturbed(parent, vectors_cls, seed: int):
    """The parent in another rotation, with noise, 2% of its keys gone and 2% new ones."""
    rng = np.random.default_rng(seed)
    n, dim = parent.matrix.shape
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    keep = rng.random(n) >= 0.02
    scale = float(np.abs(parent.matrix).mean())
    kept = parent.matrix[keep] @ rotation + rng.normal(scale=0.05 * scale, size=(int(keep.sum()), dim))
    n_new = n // 50
    matrix = np.vstack([kept, rng.normal(scale=scale, size=(n_new, dim))]).astype(np.float32)
    keys = [k for k, kept_key in zip(parent.keys, keep) if kept_key] + [f"new{i}" for i in range(n_new)]
    counts = np.concatenate([parent.counts[keep], rng.integers(1, 30, size=n_new)])
    return vectors_cls(keys=keys, matrix=matrix, counts=counts)


if __name__ == "__main__":
    sys.exit(main())

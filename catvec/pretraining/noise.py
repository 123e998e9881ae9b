"""The seed-noise baseline: the drift two seeds of the same training show on the same data.

A version's drift is judged against it, never in absolute terms. The first child that
needs it measures it (`seed_noise`: two seeds on a `noise_sample` share of the parent's
sequences, about 0.4 of a training; or one full extra training) and stores it beside the
parent (OUT/<parent>/noise.json, its sha256 in noise.json.sha256); `read_noise` trusts a
stored one only when its checksum matches and it was measured the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from catvec.base.vectors import Vectors
from catvec.pretraining.config import SkipGram
from catvec.pretraining.alignment import align
from catvec.pretraining.drift import compare

log = logging.getLogger(__name__)

MIN_NOISE_ANCHORS = 50      # a sampled seed-noise baseline needs this many keys seen >= align_min_count times


def seed_noise(corpus, skipgram: SkipGram, min_count: int, anchors_min: int, vectors: Vectors, share: float = 1.0,
               on_epoch=None) -> dict:
    """The drift two seeds of the same training show on the same data. share = 1: train
    again with another seed and compare with `vectors` (one training). share < 1: two seeds
    trained on a seeded sample of that share of the corpus's sequences and compared with
    each other (about 2 x share of a training); it reads a key's noise at a given training
    count, so the anchors are the keys seen >= `anchors_min` (align_min_count) times in the
    sample. A sample with fewer than MIN_NOISE_ANCHORS such keys: measured in full instead.
    `skipgram` and `min_count` are the settings of the training whose noise is measured.
    on_epoch(epoch, total, info): progress over every epoch of the noise trainings."""
    import dataclasses
    import tempfile

    from catvec.pretraining.skipgram import train_vectors

    seed = skipgram.seed + 1000003
    with tempfile.TemporaryDirectory(prefix="catvec-noise-") as tmp:
        sample = sample_corpus(corpus, share, skipgram.seed, Path(tmp) / "corpus.txt", anchors_min) \
            if share < 1 else None
        runs = 2 if sample is not None else 1
        progress = _noise_progress(on_epoch, runs)
        if sample is None:
            reference, how = vectors, {"method": "full", "sample": 1.0}
        else:
            reference, _ = train_vectors(sample[0], skipgram, on_epoch=progress(0), min_count=min_count)
            how = {"method": "sample", **sample[1]}
        other, _ = train_vectors(sample[0] if sample else corpus, dataclasses.replace(skipgram, seed=seed),
                                 min_count=min_count, on_epoch=progress(runs - 1))
    other, _ = align(other, reference, anchors_min)
    report = compare(other, reference, anchors_min)
    report.update(seed=seed, measured=how)
    report["anchors"]["min_count"] = anchors_min
    log.info("seed noise (%s): anchor overlap@10 %s, median cosine %s", how["method"], report["anchors"]["overlap"],
             report["anchors"]["cosine"])
    return report


def _noise_progress(on_epoch, runs: int):
    """progress(run) -> the on_epoch of that noise training, counting epochs over all runs."""
    def progress(run: int):
        def report(epoch, total, info):
            log.info("seed noise: epoch %d/%d", run * total + epoch, runs * total)
            if on_epoch is not None:
                on_epoch(run * total + epoch, runs * total, info)
        return report
    return progress


def sample_corpus(corpus, share: float, seed: int, path, min_count: int):
    """(Corpus, record) of a seeded `share` of the corpus's lines written at `path`, or None
    when fewer than MIN_NOISE_ANCHORS keys are seen >= min_count times in it (too few
    anchors for a trustworthy figure: the caller measures in full)."""
    import dataclasses

    rng = np.random.default_rng(seed + 7)
    counts = np.zeros(len(corpus.keys) + 1, dtype=np.int64)
    lines = tokens = total = 0
    with open(corpus.path, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for line in src:
            total += 1
            if rng.random() >= share:
                continue
            ids = np.asarray(line.split(), dtype=np.int64)
            np.add.at(counts, np.minimum(ids, len(counts) - 1), 1)  # a key twice in a line counts twice
            tokens += len(ids)
            lines += 1
            dst.write(line)
    anchors = int((counts[:-1] >= min_count).sum())
    if anchors < MIN_NOISE_ANCHORS:
        log.info("seed noise: a %.0f%% sample holds %d keys seen >= %d times (< %d): measured in full", 100 * share,
                 anchors, min_count, MIN_NOISE_ANCHORS)
        return None
    record = {"sample": share, "sequences": lines, "of_sequences": total, "tokens": tokens,
              "sample_anchors": anchors}
    # the full corpus's line lengths stay: a basket run's window is the parent's (its longest basket)
    return dataclasses.replace(corpus, path=Path(path), stats={**corpus.stats, "tokens": tokens}, counts=None,
                               length_counts=None), record


def read_noise(path, min_count: int, sample: float = 0.0) -> dict | None:
    """A stored seed-noise baseline (OUT/<parent>/noise.json), or None when it must be
    measured again: missing, measured with another align_min_count or on a smaller sample
    than `sample` (a full measurement serves every share), or not to be trusted (its sha256
    marker missing or not matching: edited or damaged; not a baseline)."""
    from catvec.base.errors import CatvecError
    from catvec.base.writes import read_checked_json

    try:
        stored = read_checked_json(path)
    except CatvecError as exc:
        if path.exists():
            log.warning("seed-noise baseline not trusted, measured again: %s", exc)
        return None
    anchors = stored.get("anchors") if isinstance(stored, dict) else None
    overlap = anchors.get("overlap") if isinstance(anchors, dict) else None
    if not isinstance(overlap, (int, float)) or not 0 < overlap <= 1 or not isinstance(stored.get("bands"), dict):
        log.warning("seed-noise baseline %s is not one (anchor overlap %r), measured again", path, overlap)
        return None
    measured = stored.get("measured") if isinstance(stored.get("measured"), dict) else {}
    if measured.get("sample", 1.0) < sample:
        return None
    return stored if anchors.get("min_count") == min_count else None

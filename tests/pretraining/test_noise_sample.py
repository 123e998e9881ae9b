"""The seed-noise baseline measured on a sample of the parent's sequences, its record, its
progress lines, and neighbour overlap ranked in bounded blocks."""

import json

import numpy as np
import pytest

from catvec.pretraining.config import PretrainConfig
from catvec.base.errors import CatvecError
from catvec.base.writes import write_checked_json
from catvec.cli.main import main
from catvec.pretraining import drift as drift_module, noise as noise_module
from catvec.pretraining.drift import neighbour_overlap, query_block
from catvec.pretraining.noise import MIN_NOISE_ANCHORS, read_noise, sample_corpus
from catvec.pretraining.pipeline import pretrain

FAST = dict(epochs=3, dim=16, window=5, ns_exponent=0.75, sample=0.0, scorer="cosine", min_support=1,
            vector_map=False, exact=True)
FAST_FLAGS = ["--epochs", "3", "--dim", "16", "--window", "5", "--ns-exponent", "0.75", "--sample", "0",
              "--scorer", "cosine", "--min-support", "1", "--no-vector-map", "--exact"]


def child_of(sample_events, out, **kw):
    first = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=1, **FAST, **kw))
    epochs = []
    child = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=2, **FAST, **kw),
                     on_noise_epoch=lambda epoch, total, info: epochs.append((epoch, total)))
    return first, child, epochs


def test_a_child_measures_the_noise_on_a_sample_and_records_how(sample_events, tmp_path):
    # 200 items seen ~38 times each: in a 20% sample every item is seen >= 3 times, enough anchors
    first, child, epochs = child_of(sample_events, tmp_path / "out", align_min_count=3)
    stored = json.loads((first.path / "noise.json").read_text(encoding="utf-8"))
    measured = stored["measured"]
    assert measured["method"] == "sample" and measured["sample"] == 0.2
    assert 0.1 < measured["sequences"] / measured["of_sequences"] < 0.3
    assert measured["sample_anchors"] >= MIN_NOISE_ANCHORS
    assert 0 < stored["anchors"]["overlap"] <= 1 and stored["anchors"]["min_count"] == 3
    assert child.manifest["drift"]["noise"]["measured"] == measured
    assert epochs == [(e, 6) for e in range(1, 7)]  # two seeds of 3 epochs, counted as one run
    assert child.promoted


def test_too_few_anchors_in_the_sample_measures_in_full(sample_events, tmp_path):
    # align_min_count 20: a 20% sample sees each item ~8 times, no anchors; one full training instead
    first, child, epochs = child_of(sample_events, tmp_path / "out")
    stored = json.loads((first.path / "noise.json").read_text(encoding="utf-8"))
    assert stored["measured"] == {"method": "full", "sample": 1.0}
    assert epochs == [(e, 3) for e in range(1, 4)]
    assert child.promoted


def test_a_stored_baseline_serves_the_same_or_a_smaller_share(tmp_path):
    path = tmp_path / "noise.json"
    base = {"anchors": {"overlap": 0.6, "min_count": 20}, "bands": {}}
    write_checked_json(path, {**base, "measured": {"method": "sample", "sample": 0.2}})
    assert read_noise(path, 20, 0.2) is not None and read_noise(path, 20, 0.1) is not None
    assert read_noise(path, 20, 1.0) is None  # a full measurement asked: measured again
    write_checked_json(path, base)  # stored before the sample existed: a full measurement
    assert read_noise(path, 20, 1.0) is not None


def test_sample_corpus_is_seeded_and_keeps_whole_lines(tmp_path, monkeypatch):
    from catvec.pretraining.corpus import Corpus

    monkeypatch.setattr(noise_module, "MIN_NOISE_ANCHORS", 10)
    lines = [" ".join(str(k) for k in range(i % 7, i % 7 + 5)) for i in range(2000)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = Corpus(path=path, keys=[str(k) for k in range(12)], stats={"tokens": 10000})
    first, record = sample_corpus(corpus, 0.25, 1, tmp_path / "a.txt", 3)
    again, _ = sample_corpus(corpus, 0.25, 1, tmp_path / "b.txt", 3)
    kept = first.path.read_text(encoding="utf-8").splitlines()
    assert kept == again.path.read_text(encoding="utf-8").splitlines() and set(kept) <= set(lines)
    assert 400 < record["sequences"] == len(kept) < 600 and record["tokens"] == 5 * len(kept)
    assert record["sample_anchors"] == 11  # keys 0-10 occur; 11 never does
    assert sample_corpus(corpus, 0.25, 1, tmp_path / "c.txt", 10_000) is None  # no anchors: None


def test_the_cli_prints_seed_noise_progress(sample_events, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["pretrain", "--events", str(sample_events), "--out", str(out), *FAST_FLAGS, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--events", str(sample_events), "--out", str(out), *FAST_FLAGS, "--seed", "2",
                 "--align-min-count", "3"]) == 0
    err = capsys.readouterr().err.splitlines()
    noise = [line for line in err if line.startswith("seed noise: epoch")]
    assert [line.split()[3] for line in noise] == [f"{e}/6" for e in range(1, 7)]
    assert "loss=" in noise[0]


def test_noise_sample_must_be_a_share():
    for bad in (0, -0.1, 1.5):
        with pytest.raises(CatvecError, match="noise_sample"):
            PretrainConfig(noise_sample=bad).validate()


def test_overlap_in_small_blocks_matches_a_brute_force_count(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    queries = np.arange(0, 300, 7)
    monkeypatch.setattr(drift_module, "MIN_BLOCK", 3)  # 8 queries per block (dim 8): several blocks
    assert query_block(8) == 8
    got = neighbour_overlap(a, b, queries, k=10)

    def top(m, q):
        m = m / np.linalg.norm(m, axis=1, keepdims=True)
        s = m @ m[q]
        s[q] = -np.inf
        return set(np.argsort(-s)[:10].tolist())

    want = [len(top(a, q) & top(b, q)) / 10 for q in queries]
    assert np.allclose(got, want) and got.min() < 0.5 and neighbour_overlap(a, a, queries).min() == 1.0

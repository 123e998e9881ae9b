"""Versions against their parent: alignment, drift, the gate, versions / promote, warm start."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from catvec.pretraining.config import Gate, PretrainConfig
from catvec.base.manifest import read_manifest
from catvec.base.store import VersionStore
from catvec.base.vectors import Vectors, load_vectors
from catvec.cli.main import main
from catvec.pretraining import lifecycle
from catvec.pretraining.alignment import align, median_cosine
from catvec.pretraining.drift import drift_report, neighbour_overlap
from catvec.pretraining.pipeline import pretrain

FAST = dict(epochs=3, dim=16, window=5, ns_exponent=0.75, sample=0.0, scorer="cosine", min_support=1,
            vector_map=False, exact=True)
FAST_FLAGS = ["--epochs", "3", "--dim", "16", "--window", "5", "--ns-exponent", "0.75", "--sample", "0",
              "--scorer", "cosine", "--min-support", "1", "--no-vector-map", "--exact", "--quiet"]


def random_vectors(n=300, dim=8, seed=0, counts=None) -> Vectors:
    rng = np.random.default_rng(seed)
    return Vectors(keys=[f"k{i}" for i in range(n)], matrix=rng.normal(size=(n, dim)),
                   context=rng.normal(size=(n, dim)),
                   counts=np.full(n, 50) if counts is None else counts)


def rotation(dim, seed=1) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q


def rotated(v: Vectors, r: np.ndarray) -> Vectors:
    return Vectors(keys=v.keys, matrix=v.matrix @ r, context=v.context @ r, counts=v.counts)


# ---- alignment and drift on synthetic vectors ----------------------------------------------

def test_procrustes_undoes_a_rotation_and_keeps_every_score():
    parent = random_vectors()
    child = rotated(parent, rotation(8))
    aligned, record = align(child, parent, min_count=20)
    assert record["applied"] and record["anchors"] == 300
    assert record["median_cosine_before"] < 0.5 and record["median_cosine"] > 0.999 and record["residual"] < 1e-4
    np.testing.assert_allclose(aligned.matrix, parent.matrix, atol=1e-4)
    np.testing.assert_allclose(aligned.context, parent.context, atol=1e-4)
    # input . context and cosines are the same before and after the rotation
    np.testing.assert_allclose(aligned.matrix @ aligned.context.T, child.matrix @ child.context.T, atol=1e-3)


def test_alignment_fits_on_anchors_only_and_says_why_it_was_skipped():
    counts = np.where(np.arange(300) < 100, 50, 2)
    parent = random_vectors(counts=counts)
    _, record = align(rotated(parent, rotation(8)), parent, min_count=20)
    assert record["anchors"] == 100
    _, record = align(rotated(parent, rotation(8)), parent, min_count=1000)
    assert not record["applied"] and "fewer than the 8 dimensions" in record["reason"]
    other_dim = random_vectors(dim=4)
    same, record = align(other_dim, parent, min_count=20)
    assert same is other_dim and not record["applied"] and "dimension 4" in record["reason"]


def test_neighbour_overlap_is_rotation_free_and_low_for_noise():
    parent = random_vectors()
    queries = np.arange(300)
    assert neighbour_overlap(parent.matrix, (parent.matrix @ rotation(8)), queries).mean() == 1.0
    noise = random_vectors(seed=9).matrix
    assert neighbour_overlap(parent.matrix, noise, queries).mean() < 0.15


def test_drift_report_counts_new_and_dropped_keys_by_traffic():
    parent = random_vectors(n=100)
    child = Vectors(keys=parent.keys[10:] + ["new1", "new2"], matrix=np.vstack([parent.matrix[10:], np.ones((2, 8))]),
                    counts=np.concatenate([np.full(90, 50), [25, 25]]))
    report = drift_report(child, parent, 20, noise=None)
    assert report["new"] == 2 and report["dropped"] == 10
    assert report["new_traffic"] == pytest.approx(50 / (90 * 50 + 50), abs=1e-4)
    assert report["dropped_traffic"] == pytest.approx(0.1)
    assert report["shared_keys"] == 90 and report["bands"]["20-99"]["overlap"] == 1.0


def gate_cfg(**kw):
    return Gate(**kw)


def drift(overlap, noise_overlap, keys=100):
    return {"anchors": {"keys": keys, "overlap": overlap}, "noise": {"anchors": {"overlap": noise_overlap}},
            "overlap_ratio": overlap / noise_overlap}


def quality(hr, users=1000):
    return {"vectors": {"test": {"hr": hr, "users": users}}}


def test_gate_refuses_drift_far_beyond_noise_and_a_clear_quality_drop():
    assert lifecycle.gate_decision(drift(0.6, 0.7), None, None, gate_cfg())["promoted"]
    refused = lifecycle.gate_decision(drift(0.05, 0.7), None, None, gate_cfg())
    assert not refused["promoted"] and "0.07x the seed-noise overlap" in refused["reasons"][0]
    assert lifecycle.gate_decision(drift(0.3, 0.7), None, None, gate_cfg(gate_drift=0.4))["promoted"]
    # too few anchors to judge: cannot compare, refused (never a silent pass)
    few = lifecycle.gate_decision(drift(0.0, 0.7, keys=5), None, None, gate_cfg())
    assert not few["promoted"] and few["reasons"] == ["cannot compare with the parent: 5 anchors (shared keys seen "
                                                      ">= 20 times in both), fewer than 30"]
    assert few["checks"]["drift"]["figure"] is None and not few["checks"]["drift"]["passed"]
    # HR 0.10 vs 0.14 on 1000 users: SE of the difference ~0.0144, more than 2 SE apart
    worse = lifecycle.gate_decision(None, quality(0.10), quality(0.14), gate_cfg())
    assert not worse["promoted"] and "below the parent's 0.1400" in worse["reasons"][0]
    assert lifecycle.gate_decision(None, quality(0.13), quality(0.14), gate_cfg())["promoted"]
    forced = lifecycle.gate_decision(drift(0.05, 0.7), None, None, gate_cfg(force=True))
    assert forced["promoted"] and forced["forced"] and forced["reasons"]


# ---- end to end on the bundled sample ------------------------------------------------------

@pytest.fixture(scope="module")
def shuffled_events(sample_events, tmp_path_factory) -> Path:
    frame = pd.read_csv(sample_events)
    frame["item_id"] = np.random.default_rng(0).permutation(frame["item_id"].to_numpy())
    path = tmp_path_factory.mktemp("shuffled") / "events.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def three_nights(sample_events, shuffled_events, tmp_path_factory):
    """v1, v2 (same data, another seed: aligned, promoted), v3 (items shuffled: refused)."""
    out = tmp_path_factory.mktemp("nights") / "out"
    v1 = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=1, **FAST))
    v2 = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=2, **FAST))
    v3 = pretrain(PretrainConfig(events=str(shuffled_events), out=str(out), seed=3, **FAST))
    return out, v1, v2, v3


def test_second_version_is_aligned_to_its_parent_and_promoted(three_nights):
    out, v1, v2, _ = three_nights
    assert v1.gate is None and v1.promoted and "alignment" not in v1.manifest and "noise" not in v1.manifest
    m = v2.manifest
    assert m["parent"] == v1.version and v2.promoted
    assert m["alignment"]["applied"] and m["alignment"]["anchors"] == 200
    assert m["alignment"]["median_cosine_before"] < 0.5 < 0.9 < m["alignment"]["median_cosine"]
    a, b = load_vectors(v1.path), load_vectors(v2.path)
    assert median_cosine(a.matrix, b.matrix) > 0.9  # the files on disk are the aligned ones
    assert 0.5 < m["drift"]["overlap_ratio"] and m["drift"]["noise"]["anchors"]["overlap"] > 0.5
    assert m["gate"]["promoted"] and m["gate"]["checks"]["drift"]["threshold"] == 0.5
    report = (v2.path / "report.md").read_text(encoding="utf-8")
    assert "## Against the parent" in report and "seed noise" in report


def test_shuffled_items_are_refused_and_kept_as_a_candidate(three_nights):
    out, _, v2, v3 = three_nights
    assert not v3.promoted and v3.path.is_dir() and (v3.path / "COMPLETE").is_file()
    assert VersionStore(out).latest_name() == v2.version
    assert "seed-noise overlap" in v3.gate["reasons"][0]
    assert v3.manifest["drift"]["noise_from"] == "parent"  # v2's baseline, on v2's data
    hows = [entry["how"] for entry in json.loads((out / "promotions.json").read_text())]
    assert hows == ["first", "gate"]


def test_cli_exit_3_names_the_way_out(sample_events, shuffled_events, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["pretrain", "--events", str(sample_events), "--out", str(out), *FAST_FLAGS]) == 0
    before = VersionStore(out).latest_name()
    assert main(["pretrain", "--events", str(shuffled_events), "--out", str(out), "--seed", "3", *FAST_FLAGS]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("catvec: not promoted: neighbour overlap@10")
    assert "catvec promote" in err[0] and "--force" in err[0]
    assert VersionStore(out).latest_name() == before
    noise_file = out / before / "noise.json"
    measured = noise_file.read_bytes()
    assert main(["pretrain", "--events", str(shuffled_events), "--out", str(out), "--seed", "3", "--force",
                 *FAST_FLAGS]) == 0
    assert noise_file.read_bytes() == measured  # the second child reused the parent's baseline
    forced = VersionStore(out).latest_name()
    assert forced != before and read_manifest(out / forced)["gate"]["forced"]


def test_versions_and_promote_and_rollback(three_nights, tmp_path, capsys):
    src, v1, v2, v3 = three_nights
    out = tmp_path / "out"
    shutil.copytree(src, out, symlinks=True)
    assert main(["versions", str(out)]) == 0
    text = capsys.readouterr().out
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert " promoted " in lines[v1.version] and " latest " in lines[v2.version]
    assert " refused " in lines[v3.version] and "seed-noise" in lines[v3.version]
    assert main(["promote", str(out), v3.version, "--quiet"]) == 0
    assert VersionStore(out).latest_name() == v3.version
    assert main(["promote", str(out), v1.version, "--quiet"]) == 0
    assert VersionStore(out).latest_name() == v1.version
    assert [e["how"] for e in VersionStore(out).promotions()][-2:] == ["promote", "rollback"]


@pytest.mark.parametrize("case", ["missing", "incomplete", "latest-word"])
def test_promote_refuses_what_is_not_a_complete_version(three_nights, tmp_path, capsys, case):
    src, v1, v2, v3 = three_nights
    out = tmp_path / "out"
    shutil.copytree(src, out, symlinks=True)
    name = {"missing": "20990101T000000000Z-000000", "incomplete": v3.version, "latest-word": "latest"}[case]
    if case == "incomplete":
        (out / v3.version / "COMPLETE").unlink()
    assert main(["promote", str(out), name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0]
    assert VersionStore(out).latest_name() == v2.version


def test_a_damaged_parent_stops_the_run_before_training(sample_events, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["pretrain", "--events", str(sample_events), "--out", str(out), *FAST_FLAGS]) == 0
    parent = VersionStore(out).latest_name()
    (out / parent / "keys.json").write_text("[]", encoding="utf-8")
    assert main(["pretrain", "--events", str(sample_events), "--out", str(out), *FAST_FLAGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"parent version {parent}" in err[0] and "checksum" in err[0]
    assert VersionStore(out).versions() == [parent] and VersionStore(out).latest_name() == parent


def test_warm_start_starts_known_keys_from_the_parent(sample_events, tmp_path):
    out = tmp_path / "out"
    first = pretrain(PretrainConfig(events=str(sample_events), out=str(out), **FAST))
    # a learning rate of ~0 leaves the initial vectors where they started: the parent's
    still = pretrain(PretrainConfig(events=str(sample_events), out=str(out), warm_start=True, alpha=1e-9,
                                    min_alpha=1e-10, seed=7, gate=False, **{**FAST, "epochs": 1}))
    assert still.manifest["warm_start"] == {"from": first.version, "keys": 200}
    a, b = load_vectors(first.path), load_vectors(still.path)
    np.testing.assert_allclose(b.matrix, a.matrix, atol=1e-4)
    np.testing.assert_allclose(b.context, a.context, atol=1e-4)


def test_warm_start_needs_the_parents_dimension(sample_events, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["pretrain", "--events", str(sample_events), "--out", str(out), *FAST_FLAGS]) == 0
    latest = VersionStore(out).latest_name()
    flags = [f for f in FAST_FLAGS]
    flags[flags.index("--dim") + 1] = "8"
    assert main(["pretrain", "--events", str(sample_events), "--out", str(out), "--warm-start", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert "--warm-start" in err and "dim 16" in err and "--dim 16" in err
    assert VersionStore(out).versions() == [latest]


def test_no_align_and_no_gate_opt_out(sample_events, tmp_path):
    out = tmp_path / "out"
    pretrain(PretrainConfig(events=str(sample_events), out=str(out), **FAST))
    second = pretrain(PretrainConfig(events=str(sample_events), out=str(out), align=False, gate=False, seed=2, **FAST))
    assert "alignment" not in second.manifest and "gate" not in second.manifest and "noise" not in second.manifest
    assert second.promoted and second.manifest["parent"]


def test_bad_gate_settings_are_refused_in_one_line(sample_events, tmp_path, capsys):
    assert main(["pretrain", "--events", str(sample_events), "--out", str(tmp_path / "o"), "--gate-drift", "1.5",
                 "--quiet"]) == 2
    assert "gate_drift must be between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_drift_rows_feed_the_flow_table_artifact(three_nights):
    from catvec.reports.lineage import drift_rows

    _, v1, v2, _ = three_nights
    assert drift_rows(v1.manifest) == []
    rows = drift_rows(v2.manifest)
    assert rows[-1]["keys seen"] == "anchors" and rows[-1]["keys"] == 200
    assert rows[-1]["overlap@10"] == v2.manifest["drift"]["anchors"]["overlap"]
    stored = json.loads((v1.path / "noise.json").read_text(encoding="utf-8"))  # measured by v2's run, kept with v1
    assert rows[-1]["seed noise overlap@10"] == stored["anchors"]["overlap"] == v2.manifest["drift"]["noise"]["anchors"]["overlap"]


def test_a_child_keeps_its_parents_chosen_settings_unless_retuned(sample_events, tmp_path):
    out = tmp_path / "out"
    open_cfg = dict(FAST, window=0, ns_exponent=None, sample=None)  # left open: chosen by the run
    first = pretrain(PretrainConfig(events=str(sample_events), out=str(out), tune=False, **open_cfg))
    assert first.manifest["params"]["window"] == 10  # the fallback
    child = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=2, **open_cfg))
    tuning = child.manifest["tuning"]
    assert tuning["inherited_from"] == first.version and not tuning["ran"]
    assert tuning["chosen"] == {"window": 10, "ns_exponent": 0.0, "sample": 0.0}
    assert {k: child.manifest["params"][k] for k in ("window", "ns_exponent", "sample")} == tuning["chosen"]
    again = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=3, retune=True, tune=False,
                                    **dict(open_cfg, window=5)))
    assert "inherited_from" not in again.manifest["tuning"] and again.manifest["params"]["window"] == 5


def test_seed_noise_falls_back_to_this_runs_data_when_the_parents_is_gone(sample_events, tmp_path):
    events = tmp_path / "events.csv"
    events.write_text("".join(sample_events.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]),
                      encoding="utf-8")  # not the child's input, so the child's corpus cannot stand in for it
    out = tmp_path / "out"
    pretrain(PretrainConfig(events=str(events), out=str(out), **FAST))
    shutil.rmtree(out / ".cache")
    events.write_text(events.read_text(encoding="utf-8") + "u1,1001,1700000000\n", encoding="utf-8")  # changed
    child = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=2, **FAST))
    assert child.manifest["drift"]["noise_from"].startswith("this version")
    assert child.promoted


def test_the_parents_corpus_is_extracted_again_when_the_cache_lost_it(sample_events, tmp_path):
    out = tmp_path / "out"
    first = pretrain(PretrainConfig(events=str(sample_events), out=str(out), **FAST))
    shutil.rmtree(out / ".cache")
    child = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=2, **FAST))
    assert child.manifest["drift"]["noise_from"] == "parent" and (first.path / "noise.json").is_file()


def test_settings_are_inherited_with_no_tune_too_and_warm_start_without_parent_is_cold(sample_events, tmp_path):
    out = tmp_path / "out"
    open_cfg = dict(FAST, window=0, ns_exponent=None, sample=None)
    first = pretrain(PretrainConfig(events=str(sample_events), out=str(out), warm_start=True,
                                    **dict(open_cfg, window=7), tune=False))
    assert "warm_start" not in first.manifest  # nothing to start from
    child = pretrain(PretrainConfig(events=str(sample_events), out=str(out), tune=False, seed=2, **open_cfg))
    assert child.manifest["params"]["window"] == 7 and child.manifest["tuning"]["inherited_from"] == first.version

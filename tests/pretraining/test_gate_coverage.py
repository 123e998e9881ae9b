"""The promotion gate beyond drift: lost and new keys, a flood, quality on a default run,
"cannot compare"; the checksummed noise baseline; promotion against the current latest;
the versions' true states; the promotions record written before latest moves."""

import errno
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from catvec.base import store as store_module
from catvec.pretraining.config import Gate, PretrainConfig
from catvec.base.errors import CatvecError
from catvec.base.manifest import read_manifest
from catvec.base.store import VersionStore, promote
from catvec.base.vectors import Vectors
from catvec.cli.main import main
from catvec.pretraining import lifecycle
from catvec.pretraining.drift import key_changes
from catvec.pretraining.noise import read_noise
from catvec.pretraining.pipeline import pretrain
from catvec.reports.lineage import gate_rows
from catvec.reports.render import pretrain_summary

FAST = dict(epochs=3, dim=16, window=5, ns_exponent=0.75, sample=0.0, scorer="cosine", min_support=1,
            vector_map=False, exact=True)
FAST_FLAGS = ["--epochs", "3", "--dim", "16", "--window", "5", "--ns-exponent", "0.75", "--sample", "0",
              "--scorer", "cosine", "--min-support", "1", "--no-vector-map", "--exact"]


def vectors(keys, counts, dim=4, seed=0) -> Vectors:
    rng = np.random.default_rng(seed)
    return Vectors(keys=list(keys), matrix=rng.normal(size=(len(keys), dim)), counts=np.asarray(counts))


def drift_of(child: Vectors, parent: Vectors, overlap=0.6, noise=0.7, anchors=100) -> dict:
    report = key_changes(child, parent)
    return {**report, "anchors": {"keys": anchors, "overlap": overlap}, "noise": {"anchors": {"overlap": noise}},
            "overlap_ratio": overlap / noise}


# ---- the checks on synthetic vectors ---------------------------------------------------------

def test_lost_keys_and_lost_traffic_are_checked_by_band_with_figure_and_threshold():
    parent = vectors([f"k{i}" for i in range(100)], [200] * 10 + [10] * 90)
    same = vectors(parent.keys, parent.counts, seed=1)
    ok = lifecycle.gate_decision(drift_of(same, parent), None, None, Gate())
    assert ok["promoted"] and ok["checks"]["lost_keys"]["figure"] == 0.0 and ok["checks"]["lost_keys"]["passed"]
    # the 10 most used keys gone: 10% of the keys, 2000 / 2900 = 69% of the traffic
    fewer = vectors(parent.keys[10:], [10] * 90)
    report = key_changes(fewer, parent)
    assert report["dropped_bands"]["100+"] == {"keys": 10, "dropped": 10}
    assert report["dropped_bands"]["5-19"] == {"keys": 90, "dropped": 0}
    decision = lifecycle.gate_decision(drift_of(fewer, parent), None, None, Gate())
    lost = decision["checks"]["lost_traffic"]
    assert not decision["promoted"] and lost["figure"] == pytest.approx(0.6897, abs=1e-4) and lost["threshold"] == 0.02
    assert decision["checks"]["lost_keys"]["passed"]  # 10% is the threshold itself
    assert any("of the parent's training events were on keys now gone" in r for r in decision["reasons"])
    assert "10/10 of 100+" in decision["checks"]["lost_keys"]["line"]


def test_a_flood_and_the_traffic_of_new_keys_are_refused():
    parent = vectors([f"k{i}" for i in range(100)], [20] * 100)
    flooded = vectors([*parent.keys, "bot"], [20] * 100 + [2000])  # one new key, half the events
    decision = lifecycle.gate_decision(drift_of(flooded, parent), None, None, Gate())
    assert not decision["promoted"]
    assert decision["checks"]["new_key"]["figure"] == 0.5 and decision["checks"]["new_traffic"]["figure"] == 0.5
    assert "'bot' carries 50.0% of the training events (max 5%)" in " ".join(decision["reasons"])
    few_new = vectors([*parent.keys, "n1", "n2"], [20] * 100 + [10, 10])
    assert lifecycle.gate_decision(drift_of(few_new, parent), None, None, Gate())["promoted"]
    # 1 turns a check off
    loose = Gate(gate_new_key=1.0, gate_new_traffic=1.0)
    assert lifecycle.gate_decision(drift_of(flooded, parent), None, None, loose)["promoted"]


def test_too_few_anchors_or_a_skipped_alignment_cannot_compare_and_force_publishes():
    parent = vectors([f"k{i}" for i in range(100)], [20] * 100)
    drift = drift_of(parent, parent, anchors=3)
    decision = lifecycle.gate_decision(drift, None, None, Gate())
    assert not decision["promoted"] and decision["reasons"][0].startswith("cannot compare with the parent: 3 anchors")
    skipped = dict(drift_of(parent, parent), not_compared="not aligned: 5 shared keys ... fewer than the 16 dimensions")
    skipped.pop("overlap_ratio")
    decision = lifecycle.gate_decision(skipped, None, None, Gate())
    assert decision["checks"]["drift"]["figure"] is None and "fewer than the 16 dimensions" in decision["reasons"][0]
    forced = lifecycle.gate_decision(skipped, None, None, Gate(force=True))
    assert forced["promoted"] and forced["forced"]


def test_validation_quality_compares_child_and_parent_on_the_same_users():
    def q(hr, users=500):
        return {"vectors": {"valid": {"hr": hr, "users": users}}}

    worse = lifecycle.gate_decision(None, q(0.10), q(0.20), Gate())
    check = worse["checks"]["quality"]
    assert not worse["promoted"] and check["split"] == "valid" and check["threshold"] == -2.0
    assert check["figure"] == pytest.approx(-0.1 / np.sqrt(0.1 * 0.9 / 500 + 0.2 * 0.8 / 500), abs=0.01)
    assert worse["reasons"][0].startswith("validation HR@10 0.1000 is below the parent's 0.2000")
    assert lifecycle.gate_decision(None, q(0.19), q(0.20), Gate())["promoted"]


def test_bad_gate_shares_are_refused_in_one_line():
    with pytest.raises(CatvecError, match="gate_new_key must be between 0 and 1"):
        PretrainConfig(gate_new_key=1.5).validate()


# ---- end to end on the bundled sample ------------------------------------------------------

@pytest.fixture(scope="module")
def parent_out(sample_events, tmp_path_factory):
    """OUT holding v1 (the sample) and v2 (the sample, another seed): v2 is latest and its
    seed-noise baseline is not measured yet."""
    out = tmp_path_factory.mktemp("gate") / "out"
    v1 = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=1, **FAST))
    v2 = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=2, **FAST))
    assert v2.promoted
    return out, v1, v2


def copy_out(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_a_default_child_is_judged_on_quality_with_one_training_and_shows_every_check(parent_out, sample_events,
                                                                                       tmp_path, monkeypatch, capsys):
    out = copy_out(parent_out[0], tmp_path / "out")
    first = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=3, **FAST))  # measures v2's noise
    v2 = first.manifest["parent"]
    assert first.promoted and (out / v2 / "noise.json.sha256").is_file()
    VersionStore(out).publish(v2)  # the next child's parent has its baseline already
    from catvec.pretraining import skipgram

    trainings = []
    real = skipgram.train_vectors
    monkeypatch.setattr(skipgram, "train_vectors", lambda *a, **k: trainings.append(1) or real(*a, **k))
    # inherits its parent's settings (nothing given), no tuning, no holdout
    child = pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=4, vector_map=False, exact=True,
                                    dim=16, epochs=3))
    assert len(trainings) == 1  # the gate's checks add no training
    m = child.manifest
    assert m["tuning"]["inherited_from"] == v2 and m["params"]["holdout"] == "none"
    assert m["validation"]["users"] > 50 and m["validation"]["parent"]["vectors"]["valid"]["users"] == m["validation"]["users"]
    checks = m["gate"]["checks"]
    assert set(checks) == {"drift", "lost_keys", "lost_traffic", "new_traffic", "new_key", "quality"} - {"new_key"}
    assert all(c["passed"] and c["threshold"] is not None for c in checks.values())
    # every place shows each check's figure and threshold
    summary = "\n".join(pretrain_summary(m))
    assert "gate: quality: validation HR@10" in summary and "gate: lost keys: 0 of the parent's keys gone" in summary
    assert {r["check"] for r in gate_rows(m)} == set(checks)
    report = (child.path / "report.md").read_text(encoding="utf-8")
    assert "| lost_traffic | 0.0 | 0.02 | pass |" in report and "| quality |" in report
    assert f"- validation HR@10 on the same {m['validation']['lines']} sequences" in report
    rows = lifecycle.version_rows(out)
    assert "quality " in rows[-1]["checks"] and "lost_keys 0/0.1" in rows[-1]["checks"]
    capsys.readouterr()
    assert main(["versions", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(printed) if line.startswith(child.version))
    assert " latest " in printed[at] and "gate checks (figure/threshold, * failed): drift " in printed[at + 1]


def test_renamed_items_cannot_be_compared_and_print_no_drift_ratio(parent_out, sample_events, tmp_path, capsys):
    out = copy_out(parent_out[0], tmp_path / "out")
    frame = pd.read_csv(sample_events)
    keep = set(frame["item_id"].value_counts().index[:5])  # 5 anchors at most, fewer than 16 dimensions
    frame["item_id"] = [i if i in keep else f"new{i}" for i in frame["item_id"]]
    path = tmp_path / "renamed.csv"
    frame.to_csv(path, index=False)
    code = main(["pretrain", "--events", str(path), "--out", str(out), "--seed", "5", *FAST_FLAGS])
    captured = capsys.readouterr()
    assert code == 3
    err = [line for line in captured.err.strip().splitlines() if line.startswith("catvec:")]
    assert len(err) == 1 and err[0].startswith("catvec: not promoted: cannot compare with the parent: not aligned")
    assert "x seed noise" not in captured.err + captured.out  # no drift ratio for a skipped alignment
    assert "drift: not measured (not aligned:" in captured.out and "gate: drift: cannot compare" in captured.out
    latest = VersionStore(out).latest_name()
    assert latest == parent_out[2].version
    assert main(["pretrain", "--events", str(path), "--out", str(out), "--seed", "5", "--force", "-q", *FAST_FLAGS]) == 0
    forced = read_manifest(out / "latest")
    assert forced["gate"]["forced"] and forced["gate"]["checks"]["lost_keys"]["figure"] > 0.9


def test_an_edited_or_damaged_noise_baseline_is_measured_again(parent_out, sample_events, tmp_path, caplog):
    out = copy_out(parent_out[0], tmp_path / "out")
    parent = parent_out[2].version
    cfg = PretrainConfig(events=str(sample_events), out=str(out), seed=6, **FAST)
    pretrain(cfg)
    noise = out / parent / "noise.json"
    measured = json.loads(noise.read_text())
    assert read_noise(noise, cfg.align_min_count) == measured
    VersionStore(out).publish(parent)  # v2 latest again: its children read its baseline
    edited = dict(measured, anchors=dict(measured["anchors"], overlap=0.01))
    noise.write_text(json.dumps(edited))
    assert read_noise(noise, cfg.align_min_count) is None
    child = pretrain(PretrainConfig(**{**cfg.__dict__, "seed": 7}))
    assert child.manifest["drift"]["noise"]["anchors"]["overlap"] == measured["anchors"]["overlap"]
    assert json.loads(noise.read_text())["anchors"]["overlap"] != 0.01  # measured again and stored
    assert "not trusted, measured again" in caplog.text
    VersionStore(out).publish(parent)
    noise.write_bytes(b"\x00garbage")
    (out / parent / "noise.json.sha256").unlink()
    assert read_noise(noise, cfg.align_min_count) is None
    child = pretrain(PretrainConfig(**{**cfg.__dict__, "seed": 8}))
    assert child.manifest["drift"]["noise"]["anchors"]["overlap"] == measured["anchors"]["overlap"]


def test_a_run_whose_parent_was_rolled_back_stays_a_candidate(parent_out, sample_events, tmp_path, monkeypatch, capsys):
    out = copy_out(parent_out[0], tmp_path / "out")
    _, v1, v2 = parent_out
    from catvec.pretraining import pipeline

    real = pipeline.export_version

    def rollback_meanwhile(*args, **kwargs):  # `catvec promote OUT v1` while this run trains
        assert promote(out, v1.version) == "rollback"
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "export_version", rollback_meanwhile)
    code = main(["pretrain", "--events", str(sample_events), "--out", str(out), "--seed", "9", "-q", *FAST_FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1
    assert f"its parent {v2.version} is no longer latest (latest is {v1.version}" in err[0]
    assert "or run again" in err[0] and "--force" not in err[0]  # --force does not undo a rollback
    assert VersionStore(out).latest_name() == v1.version  # the rollback holds
    name = VersionStore(out).versions()[-1]
    manifest = read_manifest(out / name)  # amended and checksummed again
    assert manifest["gate"]["held"].startswith(f"its parent {v2.version}") and not manifest["gate"]["promoted"]
    assert "kept as a candidate: its parent" in (out / name / "report.md").read_text(encoding="utf-8")
    rows = {r["version"]: r for r in lifecycle.version_rows(out)}
    assert rows[name]["status"] == "candidate" and "no longer latest" in rows[name]["note"]
    assert rows[v1.version]["status"] == "latest" and rows[v2.version]["status"] == "promoted"


def test_versions_tell_refused_from_interrupted(parent_out, sample_events, tmp_path, monkeypatch):
    out = copy_out(parent_out[0], tmp_path / "out")
    shuffled = pd.read_csv(sample_events)
    shuffled["item_id"] = np.random.default_rng(0).permutation(shuffled["item_id"].to_numpy())
    path = tmp_path / "shuffled.csv"
    shuffled.to_csv(path, index=False)
    refused = pretrain(PretrainConfig(events=str(path), out=str(out), seed=10, **FAST))
    assert not refused.promoted

    def killed(self, name):  # the process dies between the record and the move of latest
        raise KeyboardInterrupt

    monkeypatch.setattr(VersionStore, "publish", killed)
    monkeypatch.setattr(VersionStore, "restore_promotions", lambda self, entries: None)  # no cleanup after a kill
    with pytest.raises(KeyboardInterrupt):
        pretrain(PretrainConfig(events=str(sample_events), out=str(out), seed=11, **FAST))
    monkeypatch.undo()
    rows = {r["version"]: r for r in lifecycle.version_rows(out)}
    interrupted = VersionStore(out).versions()[-1]
    assert rows[refused.version]["status"] == "refused" and "seed-noise" in rows[refused.version]["note"]
    assert rows[interrupted]["status"] == "interrupted"
    assert VersionStore(out).promotions()[-1]["version"] == interrupted  # recorded, but latest never moved
    # the next move of latest marks that record entry as interrupted
    assert promote(out, refused.version) == "promote"
    entries = VersionStore(out).promotions()
    assert entries[-2]["version"] == interrupted and entries[-2]["interrupted"]
    rows = {r["version"]: r for r in lifecycle.version_rows(out)}
    assert rows[interrupted]["status"] == "interrupted" and rows[refused.version]["status"] == "latest"


@pytest.mark.parametrize("command", ["pretrain", "promote"])
def test_a_full_disk_while_recording_leaves_latest_and_no_temp_file(parent_out, sample_events, tmp_path, monkeypatch,
                                                                     capsys, command):
    out = copy_out(parent_out[0], tmp_path / "out")
    _, v1, v2 = parent_out
    before = (out / "promotions.json").read_bytes()
    real_dump = json.dump

    def full_disk(data, fh, **kwargs):
        if Path(fh.name).name.startswith(".promotions.json.tmp"):
            real_dump(data, fh, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_dump(data, fh, **kwargs)

    monkeypatch.setattr(store_module.json, "dump", full_disk)
    if command == "pretrain":
        code = main(["pretrain", "--events", str(sample_events), "--out", str(out), "--seed", "12", "-q", *FAST_FLAGS])
    else:
        code = main(["promote", str(out), v1.version, "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "no space left on device" in err
    if command == "pretrain":
        assert "latest is unchanged" in err
    assert VersionStore(out).latest_name() == v2.version  # what the message says is true
    assert (out / "promotions.json").read_bytes() == before
    assert not list(out.glob(".promotions.json.tmp*"))


def test_publish_checks_the_parent_under_the_lock(tmp_path):
    store = VersionStore(tmp_path / "out")

    def staged():
        name, staging = store.stage()
        (staging / "COMPLETE").write_text("x")
        return name, staging

    first, staging = staged()
    store_module.publish_version(store, first, staging, how="first", parent=None)
    assert store.latest_name() == first
    # a run that started on an empty OUT publishes after another run did: not promoted
    late, staging = staged()
    reasons = []
    store_module.publish_version(store, late, staging, how="first", parent=None,
                                 on_parent_moved=lambda reason: reasons.append(reason) or False)
    assert store.latest_name() == first and (store.root / late).is_dir()
    assert reasons == [f"{first} was published while this run trained (OUT had no version when it started); "
                       f"it was not compared against {first}"]
    # its parent still latest: promoted, recorded before the move
    child, staging = staged()
    store_module.publish_version(store, child, staging, how="gate", parent=first)
    assert store.latest_name() == child and [e["version"] for e in store.promotions()] == [first, child]


def test_paired_validation_scores_both_versions_on_the_same_corpus_sequences(tmp_path):
    from types import SimpleNamespace

    # 20 items in 4 clusters of 5; every sequence stays inside one cluster
    keys = [f"i{i}" for i in range(20)]
    rng = np.random.default_rng(0)
    lines = [" ".join(str(c * 5 + j) for j in rng.permutation(5)) for c in rng.integers(0, 4, size=400)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    corpus = SimpleNamespace(path=path, keys=keys, stats={"tokens": 2000})
    centres = np.eye(4, 8)
    good = Vectors(keys=keys, matrix=np.repeat(centres, 5, axis=0) + rng.normal(scale=0.05, size=(20, 8)),
                   counts=np.full(20, 100))
    noise = Vectors(keys=keys[::-1], matrix=rng.normal(size=(20, 8)), counts=np.full(20, 100))  # another row order
    cfg = PretrainConfig(tune_events=1000)
    result = lifecycle.paired_validation(noise, good, corpus, cfg.tune_events, cfg.seed, cfg.query_last)
    assert 100 < result["lines"] < 300 and result["tokens"] == 5 * result["lines"]  # about 1000 of 2000 tokens
    child, parent = result["vectors"]["vectors"]["valid"], result["parent"]["vectors"]["valid"]
    assert child["users"] == parent["users"] == result["lines"]
    # k=10 of 20 items with 4 seen: the good vectors rank the one unseen cluster mate in the top 10
    assert parent["hr"] == 1.0 and child["hr"] < 0.8
    decision = lifecycle.gate_decision(None, result["vectors"], result["parent"], Gate.of(cfg), cfg.align_min_count)
    assert not decision["promoted"] and decision["checks"]["quality"]["figure"] < -2

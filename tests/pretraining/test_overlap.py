"""Overlapping runs into one OUT (a late nightly run and a manual one): both finish, `latest`
names one complete version whose checksums verify, no staging is left behind, and the
shared corpus cache (OUT/.cache) stays whole and reusable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from catvec.base.layout import CACHE_DIR, LATEST, STAGING
from catvec.base.manifest import read_manifest
from catvec.base.store import VersionStore
from catvec.base.vectors import load_vectors
from catvec.pretraining.corpus_cache import extract_corpus, find_cached_corpus
from catvec.pretraining.events import read_events_table
from catvec.pretraining.inputs import checksum_events

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--dim", "8", "--epochs", "3", "--no-vector-map", "--no-tune", "--quiet"]
# a promotion gate may keep the later version as a candidate (exit 3): a finished run too
FINISHED = {0, 3}


def pretrain_cmd(events: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "catvec.cli.main", "pretrain", "--events", str(events), "--out", str(out), *SMALL]


def run_together(*commands) -> list[subprocess.CompletedProcess]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in commands]
    results = []
    for proc, cmd in zip(procs, commands):
        stdout, stderr = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr))
    return results


def check_out(out: Path, results) -> None:
    for result in results:
        assert result.returncode in FINISHED, result.stderr[-3000:]
    printed = {Path(r.stdout.strip().splitlines()[-1]).name for r in results if r.returncode == 0}
    store = VersionStore(out)
    versions = store.versions()
    assert len(versions) == 2  # both runs wrote a complete version of their own
    assert store.latest_name() in printed
    manifest = read_manifest(out / LATEST)  # verifies every checksum
    assert manifest["version"] == store.latest_name()
    for version in versions:
        read_manifest(out / version)
        assert len(load_vectors(out / version)) > 0
    assert list((out / STAGING).iterdir()) == []
    assert not list(out.glob(f".{LATEST}.*"))  # no half-made link
    cache = out / CACHE_DIR
    leftovers = [p.name for p in cache.iterdir() if not p.name.startswith("corpus-")]
    assert leftovers == []
    for entry in cache.iterdir():
        assert sorted(p.name for p in entry.iterdir() if not p.name.startswith("holdout")) == ["corpus.json",
                                                                                           "corpus.txt"]


@pytest.fixture
def other_events(sample_events, tmp_path) -> Path:
    """Another input: the sample without its first 500 events."""
    lines = sample_events.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "other.csv"
    path.write_text(lines[0] + "".join(lines[501:]), encoding="utf-8")
    return path


@pytest.mark.slow
def test_two_runs_of_the_same_input_at_once(sample_events, tmp_path):
    out = tmp_path / "out"
    results = run_together(pretrain_cmd(sample_events, out), pretrain_cmd(sample_events, out))
    check_out(out, results)
    assert len(list((out / CACHE_DIR).iterdir())) == 1
    # the cache they shared is whole: a third run reuses it
    third = run_together(pretrain_cmd(sample_events, out))[0]
    assert third.returncode in FINISHED, third.stderr[-3000:]
    assert read_manifest(out / Path(third.stdout.strip().splitlines()[-1]).name)["timings"]["corpus_cached"] is True


@pytest.mark.slow
def test_two_runs_of_different_inputs_at_once(sample_events, other_events, tmp_path):
    out = tmp_path / "out"
    results = run_together(pretrain_cmd(sample_events, out), pretrain_cmd(other_events, out))
    check_out(out, results)
    assert len(list((out / CACHE_DIR).iterdir())) == 2
    checksums = {read_manifest(out / v)["input"]["checksum"] for v in VersionStore(out).versions()}
    assert len(checksums) == 2


def test_an_entry_made_meanwhile_by_another_run_is_kept(sample_events, tmp_path, monkeypatch):
    """Two runs extract the same corpus; the first one finishes while the second is still
    extracting. The second keeps the first one's entry (same input and parameters, so the
    same content) instead of deleting files the first run may be training from."""
    from catvec.pretraining.config import EventOptions, Extraction, PretrainConfig, SequenceRules
    from catvec.pretraining import corpus as corpus_module

    cfg = PretrainConfig(events=str(sample_events), out=str(tmp_path), dim=8, epochs=1, tune=False).validate()
    options, rules, extraction = EventOptions.of(cfg), SequenceRules.of(cfg), Extraction.of(cfg)
    checksum = checksum_events(options)
    table = read_events_table(options)
    real_build, first, inode = corpus_module.build_corpus, [], []

    def build_while_another_run_finishes(*args, **kwargs):
        if not first:
            first.append(None)
            first[0] = extract_corpus(table, cfg.out, options, rules, extraction, checksum)
            inode.append(os.stat(first[0].path).st_ino)  # the file the first run trains from
        return real_build(*args, **kwargs)

    monkeypatch.setattr(corpus_module, "build_corpus", build_while_another_run_finishes)
    second = extract_corpus(table, cfg.out, options, rules, extraction, checksum)
    assert second.path == first[0].path and os.stat(second.path).st_ino == inode[0]
    assert second.keys == first[0].keys
    assert [p.name for p in (tmp_path / CACHE_DIR).iterdir()] == [second.path.parent.name]


def test_an_unreadable_entry_is_replaced(sample_events, tmp_path):
    from catvec.pretraining.config import EventOptions, Extraction, PretrainConfig, SequenceRules

    cfg = PretrainConfig(events=str(sample_events), out=str(tmp_path), dim=8, epochs=1, tune=False).validate()
    options, rules, extraction = EventOptions.of(cfg), SequenceRules.of(cfg), Extraction.of(cfg)
    checksum = checksum_events(options)
    table = read_events_table(options)
    entry = extract_corpus(table, cfg.out, options, rules, extraction, checksum).path.parent
    (entry / "corpus.json").write_text("{not json", encoding="utf-8")
    assert find_cached_corpus(cfg.out, options, rules, checksum) is None
    again = extract_corpus(table, cfg.out, options, rules, extraction, checksum)
    assert again.path.parent == entry and find_cached_corpus(cfg.out, options, rules, checksum).keys == again.keys
    assert [p.name for p in (tmp_path / CACHE_DIR).iterdir()] == [entry.name]

"""Inputs read once: the checksum a version records is that of the bytes it trained on, the
corpus cache is keyed by what was read, and leftovers of killed runs are swept."""

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from catvec.pretraining.config import PretrainConfig
from catvec.base.errors import CatvecError
from catvec.base.manifest import read_manifest
from catvec.base.store import VersionStore
from catvec.base.vectors import load_vectors
from catvec.pretraining import pipeline, shards
from catvec.base.layout import CACHE_DIR
from catvec.pretraining.pipeline import pretrain


def write_events(path: Path, prefix: str, seed: int) -> Path:
    rng = random.Random(seed)
    lines = ["user_id,item_id,timestamp"]
    for u in range(30):
        for t in range(8):
            lines.append(f"u{u},{prefix}{rng.randrange(12)},{t}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def small(events: Path, out: Path, **extra) -> PretrainConfig:
    return PretrainConfig(events=str(events), out=str(out), dim=8, epochs=2, window=2, tune=False, exact=True,
                          gate=False, align=False, **extra)


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def swap_on_first_call(monkeypatch, module, name, path: Path, replacement: Path):
    """Patch module.name so its first call first replaces `path` by `replacement` (a rename,
    as an export that lands late), then reads."""
    real = getattr(module, name)
    calls = []

    def late(*args, **kwargs):
        if not calls:
            os.replace(replacement, path)
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, late)
    return calls


def cache_entries(out: Path) -> list[str]:
    cache = out / CACHE_DIR
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


@pytest.mark.parametrize("sharded", [False, True], ids=["one-read", "sharded"])
def test_a_file_replaced_while_read_is_refused_and_not_cached(tmp_path, monkeypatch, sharded):
    events = write_events(tmp_path / "events.csv", "a", 1)
    first = events.read_bytes()
    late = write_events(tmp_path / "late.csv", "b", 2)
    late_bytes = late.read_bytes()
    out = tmp_path / "out"
    if sharded:
        swap_on_first_call(monkeypatch, shards, "read_shard", events, late)
    else:
        swap_on_first_call(monkeypatch, pipeline, "read_events_table", events, late)
    with pytest.raises(CatvecError) as info:
        pretrain(small(events, out, shards=2 if sharded else 1))
    message = str(info.value)
    assert "\n" not in message and str(events) in message and "while this run read it" in message
    assert VersionStore(out).versions() == []
    assert cache_entries(out) == []  # nothing cached under the first file's checksum, no temp dir
    monkeypatch.undo()

    # the next run on the file as it is now: trained on it, its checksum recorded
    result = pretrain(small(events, out))
    assert result.manifest["input"]["checksum"] == sha(events) == "sha256:" + hashlib.sha256(late_bytes).hexdigest()
    assert all(k.startswith("b") for k in load_vectors(result.path).keys)
    # and the first file back: its own items, not the late file's from a mis-keyed cache entry
    events.write_bytes(first)
    again = pretrain(small(events, out))
    assert again.manifest["input"]["checksum"] == sha(events)
    assert all(k.startswith("a") for k in load_vectors(again.path).keys)


def rewrite_after_training(monkeypatch, events: Path):
    real = pipeline.train_skipgram
    first = events.read_bytes()

    def train_then_rewrite(*args, **kwargs):
        result = real(*args, **kwargs)
        write_events(events, "c", 3)  # in place: same inode, other size / ctime
        return result

    monkeypatch.setattr(pipeline, "train_skipgram", train_then_rewrite)
    return "sha256:" + hashlib.sha256(first).hexdigest()


def test_a_file_rewritten_after_its_last_read_keeps_the_checksum_of_what_was_read(tmp_path, monkeypatch):
    events = write_events(tmp_path / "events.csv", "a", 1)
    first = rewrite_after_training(monkeypatch, events)
    result = pretrain(small(events, tmp_path / "out"))  # one read, before training: the bytes it checked
    assert result.manifest["input"]["checksum"] == first != sha(events)
    assert all(k.startswith("a") for k in load_vectors(result.path).keys)


def test_a_file_rewritten_before_the_evaluation_reads_it_again_is_refused(tmp_path, monkeypatch):
    events = write_events(tmp_path / "events.csv", "a", 1)
    out = tmp_path / "out"
    pretrain(small(events, out, holdout="last"))  # caches the corpus
    rewrite_after_training(monkeypatch, events)
    # a cache hit: the events are read only for the evaluation, after training
    with pytest.raises(CatvecError, match=r"events.csv: the file changed while this run read it \(evaluation"):
        pretrain(small(events, out, holdout="last"))
    assert len(VersionStore(out).versions()) == 1
    assert not list((out / ".staging").iterdir())


def test_an_unchanged_input_is_cached_under_its_checksum(tmp_path):
    events = write_events(tmp_path / "events.csv", "a", 1)
    out = tmp_path / "out"
    first = pretrain(small(events, out))
    second = pretrain(small(events, out))
    assert first.manifest["input"]["checksum"] == second.manifest["input"]["checksum"] == sha(events)
    assert second.manifest["timings"]["corpus_cached"] is True
    assert read_manifest(second.path)["corpus"] == first.manifest["corpus"]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_killed_runs_are_swept_and_a_live_runs_are_kept(tmp_path):
    events = write_events(tmp_path / "events.csv", "a", 1)
    out = tmp_path / "out"
    cache = out / CACHE_DIR
    dead = dead_pid()
    killed = cache / f".tmp-corpus-0123456789abcdef01234567-{dead}-a1b2c3"
    (killed / "corpus.txt.shards").mkdir(parents=True)
    (killed / "corpus.txt").write_text("half", encoding="utf-8")
    aside = cache / f".old-.tmp-corpus-0123456789abcdef01234567-{dead}-d4e5f6"
    aside.mkdir()
    live = cache / f".tmp-corpus-0123456789abcdef01234567-{os.getpid()}-0a0b0c"  # an overlapping run
    live.mkdir()
    json_tmp = out / f".promotions.json.tmp{dead}"
    json_tmp.write_text("[", encoding="utf-8")
    pretrain(small(events, out))
    assert not killed.exists() and not aside.exists() and not json_tmp.exists()
    assert live.is_dir()


def test_a_sharded_extraction_killed_midway_is_swept_by_the_next_run(tmp_path):
    events = write_events(tmp_path / "events.csv", "a", 1)
    out = tmp_path / "out"
    env = dict(os.environ, CATVEC_KILL_AT="shard-extract", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    killed = subprocess.run([sys.executable, "-m", "catvec.cli.main", "pretrain", "--events", str(events), "--out",
                             str(out), "--shards", "2", "--dim", "8", "--epochs", "2", "--no-tune", "--quiet"],
                            env=env, capture_output=True, text=True)
    assert killed.returncode == -9
    assert [p.name for p in (out / CACHE_DIR).iterdir() if p.name.startswith(".tmp-corpus-")]  # what it left
    pretrain(small(events, out, shards=2))
    left = cache_entries(out)
    assert left and all(name.startswith("corpus-") for name in left), left  # the new entry only, no temp dir
    assert not list((out / ".staging").iterdir())

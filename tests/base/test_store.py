"""Versioned output directories."""

import errno
import os

import pytest

from catvec.base.errors import CatvecError
from catvec.base.store import VersionStore


def finish(store):
    name, staging = store.stage()
    (staging / "COMPLETE").write_text("x")
    store.commit(name, staging)
    store.publish(name)
    return name


def test_latest_moves_and_prune_keeps_latest(tmp_path):
    store = VersionStore(tmp_path / "out")
    names = [finish(store) for _ in range(4)]
    assert store.latest_name() == names[-1]
    assert os.readlink(tmp_path / "out" / "latest") == names[-1]  # relative link
    assert store.versions() == sorted(names)
    store.prune(2)
    assert store.versions() == sorted(names)[-2:]


def test_prune_never_deletes_latest(tmp_path):
    store = VersionStore(tmp_path / "out")
    first = finish(store)
    finish(store)
    store.publish(first)  # latest points at the older one
    store.prune(1)
    assert first in store.versions()


def test_staging_is_invisible_and_cleaned_when_owner_died(tmp_path):
    store = VersionStore(tmp_path / "out")
    name, staging = store.stage()
    assert store.versions() == []
    (staging / ".pid").write_text("999999999")  # a process that does not exist
    VersionStore(tmp_path / "out").prepare()
    assert not staging.exists()


def test_commit_requires_marker(tmp_path):
    store = VersionStore(tmp_path / "out")
    name, staging = store.stage()
    with pytest.raises(RuntimeError):
        store.commit(name, staging)


@pytest.mark.parametrize("err, message", [(errno.EACCES, "permission denied"), (errno.ENOSPC, "no space left")])
def test_unwritable_output_is_clear(tmp_path, monkeypatch, err, message):
    from pathlib import Path

    def refuse(self, *args, **kwargs):
        raise OSError(err, os.strerror(err), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(CatvecError, match=message):
        VersionStore(tmp_path / "out").prepare()


def test_output_path_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CatvecError, match="cannot write to output directory"):
        VersionStore(tmp_path / "file").prepare()


def test_staged_block_failure_leaves_nothing(tmp_path):
    store = VersionStore(tmp_path / "out")
    with pytest.raises(CatvecError, match="no space left on device"):
        with store.staged() as (name, staging):
            (staging / "vectors.safetensors").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list((tmp_path / "out" / ".staging").iterdir()) == []
    assert store.versions() == [] and store.latest_name() is None

"""Every write error is one true line naming the path (no space, read-only, no permission),
never "internal error", and leaves no temp file: the weight writer, write_json, staging
and the finetune model directory."""

import errno
import hashlib
import os
from pathlib import Path

import pytest
import safetensors.numpy
import safetensors.torch
from safetensors import SafetensorError

from catvec.base.errors import CatvecError, WriteError
from catvec.base.writes import write_json
from catvec.cli.main import main

FAST = ["--epochs", "2", "--dim", "8", "--exact", "--no-tune", "--quiet"]
WHY = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
       errno.EACCES: "permission denied"}


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".cache" not in p.parts}


def leftovers(root: Path) -> list[str]:
    """Temp files and staging dirs anywhere under root."""
    staging = [str(p) for p in (root / ".staging").iterdir()] if (root / ".staging").is_dir() else []
    return staging + [str(p) for p in root.rglob("*.tmp*")] + [str(p) for p in root.rglob(".tmp-*")]


@pytest.mark.parametrize("code", sorted(WHY))
def test_write_json_names_the_path_and_leaves_the_old_file(tmp_path, monkeypatch, code):
    path = tmp_path / "record.json"
    write_json(path, {"old": 1})

    def full(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError) as info:
        write_json(path, {"new": 2})
    assert isinstance(info.value, CatvecError) and isinstance(info.value, OSError)
    assert str(info.value).startswith(f"{path}: cannot write the file ({WHY[code]}")
    assert path.read_text() == '{\n  "old": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_disk_full_in_the_weight_writer_is_one_line(tmp_path, monkeypatch, capsys, sample_events):
    out = tmp_path / "out"
    assert main(["pretrain", "--events", str(sample_events), "--out", str(out), *FAST]) == 0
    before = tree(out)

    def full(tensors, filename, *args, **kwargs):  # what safetensors raises on ENOSPC (its Rust writer)
        Path(filename).write_bytes(b"partial")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    capsys.readouterr()
    assert main(["pretrain", "--events", str(sample_events), "--out", str(out), *FAST, "--no-gate", "--no-align"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "internal error" not in err
    assert "vectors.safetensors: cannot write the file (no space left on device" in err
    assert tree(out) == before and leftovers(out) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_write_error_in_the_corpus_names_the_file(tmp_path, monkeypatch, capsys, sample_events, code):
    from catvec.pretraining import corpus

    real = corpus.build_corpus

    def failing(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(args[1]))

    monkeypatch.setattr(corpus, "build_corpus", failing)
    out = tmp_path / "out"
    assert main(["pretrain", "--events", str(sample_events), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "corpus.txt" in err and WHY[code] in err and "internal error" not in err
    assert leftovers(out) == [] and real is not failing


def test_read_only_model_dir_is_one_line(tmp_path, monkeypatch, capsys, inputs):
    vectors_dir, table = inputs
    real = safetensors.torch.save_file

    def read_only(tensors, filename, *args, **kwargs):
        if filename.endswith("model.safetensors"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), filename)
        return real(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", read_only)
    out = tmp_path / "models"
    assert main(["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "y",
                 "--out", str(out), "--quiet", "--epochs", "1", "--auto", "off"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "internal error" not in err
    assert "model.safetensors: cannot write the file (read-only file system" in err
    assert not (out / "latest").exists() and leftovers(out) == []

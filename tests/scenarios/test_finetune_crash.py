"""Kill `catvec finetune` at named points; exact mode is byte-identical across processes."""

import os
import signal
import subprocess
import sys

import pytest

from catvec.finetuning.modeldir import load_model
from catvec.base.manifest import read_manifest
from ftdata import write_inputs

FAST = ["--epochs", "3", "--batch-size", "64", "--hidden", "16", "--exact", "-q"]


def finetune(inputs, out, kill_at=None, *extra):
    vectors_dir, table = inputs
    env = {k: v for k, v in os.environ.items() if k != "CATVEC_KILL_AT"}
    if kill_at:
        env["CATVEC_KILL_AT"] = kill_at
    argv = [sys.executable, "-m", "catvec.cli.main", "finetune", "--vectors", str(vectors_dir), "--table", str(table),
            "--target", "y", "--out", str(out), *FAST, *extra]
    return subprocess.run(argv, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def first_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("ftcrash")
    inputs = write_inputs(root)
    out = root / "models"
    proc = finetune(inputs, out)
    assert proc.returncode == 0, proc.stderr
    return inputs, out, read_manifest(out / "latest")["version"]


@pytest.mark.parametrize("point", ["finetune-epoch", "vectors-written", "before-commit", "before-publish"])
def test_kill_leaves_previous_model(first_model, point):
    inputs, out, version = first_model
    before = (out / "latest" / "model.safetensors").read_bytes()
    proc = finetune(inputs, out, point, "--seed", "5")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert read_manifest(out / "latest")["version"] == version
    assert (out / "latest" / "model.safetensors").read_bytes() == before
    load_model(out / "latest")
    for name in os.listdir(out):
        if not name.startswith(".") and name != "latest":
            read_manifest(out / name)  # every visible version is complete


def test_exact_model_files_identical_across_processes(first_model, tmp_path):
    inputs, out, version = first_model
    assert finetune(inputs, tmp_path / "again").returncode == 0
    for name in ("model.safetensors", "model.json", "vocabs.json", "metrics.json",
                 "embeddings/item_id/vectors.safetensors"):
        assert (tmp_path / "again/latest" / name).read_bytes() == (out / version / name).read_bytes(), name

"""Kill `catvec pretrain` at named points: the previous latest must stay whole."""

import os
import signal
import subprocess
import sys

import pytest

from catvec.base.store import VersionStore
from catvec.base.manifest import read_manifest
from catvec.base.vectors import load_vectors

FAST = ["--epochs", "3", "--dim", "16", "--exact", "-q"]
POINTS = ["events-read", "training-epoch", "vectors-written", "before-commit", "before-publish"]


def pretrain(out, *extra, kill_at=None):
    env = dict(os.environ)
    env.pop("CATVEC_KILL_AT", None)
    if kill_at:
        env["CATVEC_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "catvec.cli.main", "pretrain", "--out", str(out), *FAST, *extra],
                          env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def first_version(tmp_path_factory):
    out = tmp_path_factory.mktemp("crash") / "out"
    assert pretrain(out).returncode == 0
    return out, read_manifest(out / "latest")["version"]


@pytest.mark.parametrize("point", POINTS)
def test_kill_leaves_previous_latest(first_version, point):
    out, version = first_version
    before = load_vectors(out / "latest")
    # --refresh so that the kill during extraction really happens in extraction
    proc = pretrain(out, "--refresh", "--seed", "2", kill_at=point)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert read_manifest(out / "latest")["version"] == version
    after = load_vectors(out / "latest")
    assert after.keys == before.keys and (after.matrix == before.matrix).all()
    store = VersionStore(out)
    for name in store.versions():  # whatever is listed as a version is complete and loads
        load_vectors(out / name)


def test_next_run_succeeds_and_clears_leftovers(first_version):
    out, version = first_version
    assert pretrain(out, kill_at="before-publish").returncode == -signal.SIGKILL
    assert list((out / ".staging").iterdir()) or list(out.glob(".latest.*"))
    assert pretrain(out).returncode == 0
    assert read_manifest(out / "latest")["version"] != version
    assert list((out / ".staging").iterdir()) == []
    assert not list(out.glob(".latest.*"))

"""The Dask engine against a real `dask scheduler` and `dask worker` processes on loopback:
the same corpus as the local engine, also when a worker dies in the middle of a shard."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

pytest.importorskip("distributed")

from catvec.pretraining.config import EventOptions, Extraction, PretrainConfig, SequenceRules  # noqa: E402
from catvec.pretraining.shards import extract_sharded  # noqa: E402


def sharded(cfg, path):
    return extract_sharded(EventOptions.of(cfg), SequenceRules.of(cfg), Extraction.of(cfg), path)


REPO = Path(__file__).resolve().parents[2]
DASK = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def start(*argv, **env):
    environment = dict(os.environ, PYTHONPATH=str(REPO), **env)
    return subprocess.Popen([DASK, *argv], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_workers(address: str, n: int) -> None:
    from distributed import Client

    with Client(address, timeout="10s", set_as_default=False) as client:
        client.wait_for_workers(n, timeout=60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers on 127.0.0.1 (random ports)."""
    if DASK is None:
        pytest.skip("the dask command is not installed")
    info = tmp_path_factory.mktemp("dask") / "scheduler.json"
    procs = [start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(info))]
    try:
        deadline = time.time() + 60
        while not (info.is_file() and info.stat().st_size) and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            procs.append(start("worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"))
        wait_for_workers(address, 2)
        yield address, procs
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 6000
    path = tmp_path_factory.mktemp("events") / "events.parquet"
    pl.DataFrame({"user_id": rng.integers(0, 200, n), "item_id": rng.integers(0, 150, n),
                  "timestamp": 1_790_000_000 + rng.integers(0, 10**6, n)}).write_parquet(path)
    return path


def test_dask_engine_writes_the_local_corpus(cluster, events, tmp_path):
    address, _ = cluster
    local = sharded(PretrainConfig(events=str(events), shards=1, min_count=2), tmp_path / "local.txt")
    dask = sharded(PretrainConfig(events=str(events), min_count=2, engine="dask", scheduler=address),
                           tmp_path / "dask.txt")
    assert digest(dask.path) == digest(local.path) and dask.stats == local.stats


def test_a_worker_lost_mid_extraction_costs_a_retry(cluster, events, tmp_path):
    address, procs = cluster
    # a third worker, without a nanny to restart it, that dies (SIGKILL) in its first shard task
    doomed = start("worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1", "--no-nanny",
                   CATVEC_KILL_AT="shard-extract")
    procs.append(doomed)
    wait_for_workers(address, 3)
    local = sharded(PretrainConfig(events=str(events), shards=1), tmp_path / "local.txt")
    dask = sharded(PretrainConfig(events=str(events), shards=6, engine="dask", scheduler=address),
                           tmp_path / "dask.txt")
    assert doomed.wait(timeout=30) == -9  # it did die in a shard
    assert digest(dask.path) == digest(local.path)

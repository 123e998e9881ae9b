"""Shared fixtures: small seeded data, and a Prefect home that is never ~/.prefect."""

import os
import tempfile
from pathlib import Path

import pytest

# Before anything imports prefect: tests never write into the real ~/.prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="catvec-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"


@pytest.fixture(scope="session")
def sample_events() -> Path:
    return DATA / "events.csv"


@pytest.fixture(scope="session")
def sample_labels() -> Path:
    return DATA / "labels.csv"


@pytest.fixture(scope="session")
def sample_items() -> Path:
    return DATA / "items.csv"


@pytest.fixture
def inputs(tmp_path):
    """(weight dir, labels.csv) of the finetune tests' seeded data (tests/ftdata.py)."""
    from ftdata import write_inputs

    return write_inputs(tmp_path)


@pytest.fixture
def write_csv(tmp_path):
    """write_csv("name.csv", "a,b\\n1,2\\n") -> Path, bytes written exactly as given."""

    def _write(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        return path

    return _write


@pytest.fixture(scope="session")
def clustered_events():
    """Seeded events with 4 planted clusters of 10 items (ids c<k>_<j>), as a pandas DataFrame."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    t = 1_700_000_000
    for user in range(120):
        cluster = user % 4
        for _ in range(12):
            rows.append((f"u{user}", f"c{cluster}_{int(rng.integers(10))}", t))
            t += 60
        t += 86400
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])

"""catvec/base/tables.py: a Source's scan leaves out the date partitions outside a time window."""

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from catvec.base.tables import partition_filter, resolve_source
from catvec.pretraining.events import time_window


@pytest.fixture
def days(tmp_path) -> Path:
    """date=2026-09-20, -21 and -25 partitions, the last one's file not Parquet at all."""
    root = tmp_path / "events"
    for day in ("2026-09-20", "2026-09-21", "2026-09-25"):
        folder = root / f"date={day}"
        folder.mkdir(parents=True)
        pl.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "b"],
                      "timestamp": [f"{day}T10:00:00Z"] * 2}).write_parquet(folder / "part.parquet")
    (root / "date=2026-09-25" / "part.parquet").write_bytes(b"not parquet " * 20)
    return root


def test_a_window_skips_the_partitions_outside_it_unread(days):
    src = resolve_source(str(days), "events", "--events")
    inside = src.scan(window=time_window("2026-09-20", "2026-09-21")).collect()
    assert inside.height == 4 and sorted(set(inside["date"].cast(pl.Utf8))) == ["2026-09-20", "2026-09-21"]
    with pytest.raises(pl.exceptions.ComputeError):  # unpruned, the damaged partition is read
        src.scan().collect()


def test_the_window_keeps_a_days_margin_and_open_ends():
    schema = {"date": pl.Date, "region": pl.Utf8}
    frame = pl.DataFrame({"date": pl.date_range(date(2026, 9, 18), date(2026, 9, 26), eager=True)})
    frame = frame.with_columns(region=pl.lit("eu"))
    kept = frame.filter(partition_filter(schema, time_window("2026-09-21", "2026-09-22")))["date"]
    assert (kept.min(), kept.max()) == (date(2026, 9, 20), date(2026, 9, 23))  # a partition's date may be local time
    since_only = frame.filter(partition_filter(schema, time_window("2026-09-25", "")))["date"]
    assert since_only.min().isoformat() == "2026-09-24" and since_only.max().isoformat() == "2026-09-26"
    assert partition_filter(schema, (None, None)) is None  # no window: nothing to prune
    assert partition_filter({"region": pl.Utf8}, time_window("2026-09-21", "")) is None  # no date key


def test_a_date_key_that_is_not_a_date_is_read_not_pruned(tmp_path):
    """date=latest beside date=2026-09-20: polars reads the key as text; nothing is pruned and
    nothing crashes, the time filter of the reader does the rest."""
    root = tmp_path / "events"
    for day in ("2026-09-20", "latest"):
        folder = root / f"date={day}"
        folder.mkdir(parents=True)
        pl.DataFrame({"user_id": ["u1"], "item_id": ["a"], "timestamp": ["2026-09-20T10:00:00Z"]}).write_parquet(
            folder / "part.parquet")
    src = resolve_source(str(root), "events", "--events")
    assert src.scan(window=time_window("2026-09-20", "2026-09-20")).collect().height == 2

"""Reading events: formats, columns, times, nulls."""

import pandas as pd
import polars as pl
import pytest

from catvec.base.errors import CatvecError
from catvec.pretraining.config import EventOptions
from catvec.pretraining.events import read_events


def test_csv_reads_ids_as_strings(write_csv):
    path = write_csv("e.csv", "user_id,item_id,timestamp\n007,0123,10\n007,45,11\n")
    frame = read_events(path).frame
    assert frame["user"].to_list() == ["007", "007"]
    assert frame["item"].to_list() == ["0123", "45"]
    assert frame["t"].to_list() == [10_000_000, 11_000_000]


def test_parquet_and_dataframe_agree(tmp_path):
    df = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": [1.0, 2.0, 3.0], "timestamp": [1, 2, 3]})
    df.to_parquet(tmp_path / "e.parquet")
    from_file = read_events(tmp_path / "e.parquet").frame
    from_frame = read_events(df).frame
    assert from_file.equals(from_frame)
    assert from_frame["item"].to_list() == ["1", "2", "3"]


def test_custom_columns_and_tsv(write_csv):
    path = write_csv("e.tsv", "who\twhat\twhen\nu\tx y\t2024-01-01T00:00:00Z\n")
    frame = read_events(path, EventOptions(user_col="who", item_col="what", time_col="when")).frame
    assert frame["item"].to_list() == ["x y"]
    assert frame["t"].to_list() == [1_704_067_200_000_000]


def test_bom_and_crlf(write_csv):
    path = write_csv("e.csv", b"\xef\xbb\xbfuser_id,item_id,timestamp\r\nu,1,5\r\nu,2,6\r\n")
    frame = read_events(path).frame
    assert frame["item"].to_list() == ["1", "2"]


@pytest.mark.parametrize("values, expected_us", [
    ([1_700_000_000, 1_700_000_060], [1_700_000_000_000_000, 1_700_000_060_000_000]),        # seconds
    ([1_700_000_000_000, 1_700_000_060_000], [1_700_000_000_000_000, 1_700_000_060_000_000]),  # ms
])
def test_epoch_unit_by_magnitude(values, expected_us):
    df = pl.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": values})
    assert read_events(df).frame["t"].to_list() == expected_us


def test_time_zones_converted_to_utc():
    df = pl.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"],
                       "timestamp": ["2024-01-01T02:00:00+02:00", "2024-01-01T00:30:00Z"]})
    t = read_events(df).frame["t"].to_list()
    assert t[1] - t[0] == 30 * 60 * 1_000_000


def test_mixed_epoch_units_refused():
    df = pl.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [1_700_000_000, 1_700_000_000_000]})
    with pytest.raises(CatvecError, match="mixes epoch seconds and milliseconds"):
        read_events(df)


def test_missing_column_names_options(write_csv):
    path = write_csv("e.csv", "user,item_id,timestamp\nu,1,1\n")
    with pytest.raises(CatvecError, match=r"no column 'user_id' \(columns: user, item_id, timestamp\); pass --user-col"):
        read_events(path)


def test_wrong_delimiter_hint(write_csv):
    path = write_csv("e.csv", "user_id;item_id;timestamp\nu;1;1\n")
    with pytest.raises(CatvecError, match="delimiter"):
        read_events(path)


def test_nulls_refused_or_dropped(write_csv):
    path = write_csv("e.csv", "user_id,item_id,timestamp\nu,1,1\nu,,2\nv,3,3\n")
    with pytest.raises(CatvecError, match=r"column 'item_id' has 1 empty value\(s\) \(first at data row 2\)"):
        read_events(path)
    table = read_events(path, EventOptions(drop_nulls=True))
    assert table.frame["item"].to_list() == ["1", "3"]
    assert table.stats["dropped"] == {"empty_item_id": 1}


def test_unparsable_time_names_value(write_csv):
    path = write_csv("e.csv", "user_id,item_id,timestamp\nu,1,2024-01-01\nu,2,yesterday\n")
    with pytest.raises(CatvecError, match="'yesterday' at data row 2"):
        read_events(path)


def test_mixed_date_formats_each_parsed(write_csv):
    path = write_csv("e.csv", "user_id,item_id,timestamp\nu,1,2024-01-01 00:00:00\nu,2,2024-01-02T00:00:00Z\n")
    t = read_events(path).frame["t"].to_list()
    assert t[1] - t[0] == 86400 * 1_000_000


def test_basket_mode_needs_no_user_or_time(write_csv):
    path = write_csv("b.csv", "order_id,item_id\no1,a\no1,b\no2,c\n")
    frame = read_events(path, EventOptions(basket_col="order_id")).frame
    assert frame["group"].to_list() == ["o1", "o1", "o2"]
    assert frame["user"].null_count() == 3


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("user_id,item_id,timestamp\n", "no events"),
    ("user_id,item_id,item_id\nu,1,2\n", "duplicated column"),
])
def test_degenerate_files(write_csv, content, message):
    with pytest.raises(CatvecError, match=message):
        read_events(write_csv("e.csv", content))


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "e.json").write_text("{}")
    with pytest.raises(CatvecError, match="unknown format '.json'"):
        read_events(tmp_path / "e.json")
    with pytest.raises(CatvecError, match="not found"):
        read_events(tmp_path / "nope.csv")

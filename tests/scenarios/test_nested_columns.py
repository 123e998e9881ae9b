"""Non-scalar key or time columns (Parquet lists, arrays, structs) are refused in one line
naming the column and its type, on the one-read path and the sharded path alike."""

import polars as pl
import pytest

from catvec.pretraining.config import PretrainConfig
from catvec.base.errors import CatvecError
from catvec.cli.main import main
from catvec.pretraining.events import read_events
from catvec.pretraining.pipeline import pretrain


def events_frame(n_users: int = 20) -> pl.DataFrame:
    users = [f"u{u}" for u in range(n_users) for _ in range(4)]
    return pl.DataFrame({"user_id": users, "item_id": [f"i{k % 7}" for k in range(len(users))],
                         "timestamp": list(range(len(users)))})


NESTED = {
    "list item": ("item_id", lambda f: f.with_columns(pl.concat_list("item_id", pl.lit("x")).alias("item_id")), "List"),
    "struct user": ("user_id", lambda f: f.with_columns(pl.struct("user_id", "item_id").alias("user_id")), "Struct"),
    "array time": ("timestamp", lambda f: f.with_columns(
        pl.concat_list("timestamp", "timestamp").list.to_array(2).alias("timestamp")), "Array"),
}


@pytest.mark.parametrize("shards", [1, 2], ids=["one-read", "sharded"])
@pytest.mark.parametrize("case", sorted(NESTED))
def test_nested_key_or_time_column_refused(tmp_path, case, shards):
    column, make, type_name = NESTED[case]
    path = tmp_path / "events.parquet"
    make(events_frame()).write_parquet(path)
    out = tmp_path / "out"
    cfg = PretrainConfig(events=str(path), out=str(out), dim=8, epochs=1, window=2, tune=False, shards=shards)
    with pytest.raises(CatvecError) as info:
        pretrain(cfg)
    message = str(info.value)
    assert "\n" not in message and f"column {column!r}" in message and type_name in message
    assert not (out / "latest").exists()


def test_forty_distinct_lists_do_not_collapse_into_one_key(tmp_path):
    frame = pl.DataFrame({"user_id": [f"u{k // 2}" for k in range(40)],
                          "item_id": [[k, k + 1] for k in range(40)], "timestamp": list(range(40))})
    with pytest.raises(CatvecError, match="'item_id' has the type List"):
        read_events(frame)


def test_cli_exit_2_one_line(tmp_path, capsys):
    path = tmp_path / "events.parquet"
    NESTED["list item"][1](events_frame()).write_parquet(path)
    assert main(["pretrain", "--events", str(path), "--out", str(tmp_path / "out"), "--epochs", "1", "--no-tune",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "item_id" in err and "List" in err and "internal error" not in err


def test_a_nested_feature_column_of_a_labeled_table_is_refused(tmp_path, capsys, inputs):
    vectors_dir, table = inputs
    frame = pl.read_csv(table).with_columns(pl.concat_list(pl.col("color"), pl.lit("x")).alias("color"))
    path = tmp_path / "labels.parquet"
    frame.write_parquet(path)
    assert main(["finetune", "--vectors", str(vectors_dir), "--table", str(path), "--target", "y",
                 "--cat-cols", "item_id,color", "--out", str(tmp_path / "models"), "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "column 'color' has the type List" in err

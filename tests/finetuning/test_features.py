"""catvec features / catvec.features: vectors as numeric columns of any table."""

import numpy as np
import polars as pl
import pytest

import catvec
from catvec.base.errors import CatvecError
from catvec.base.vectors import Vectors, save_vectors
from catvec.cli.main import main
from catvec.finetuning.features import add_features, parse_cols, reduce_dims


@pytest.fixture
def weights(tmp_path):
    rng = np.random.default_rng(7)
    keys = ["10", "20", "30", "a b", "40"]
    vectors = Vectors(keys=keys, matrix=rng.normal(size=(5, 6)).astype(np.float32),
                      context=rng.normal(size=(5, 6)).astype(np.float32))
    save_vectors(vectors, tmp_path / "v", {"params": {"dim": 6}})
    users = Vectors(keys=["u1", "u2"], matrix=rng.normal(size=(2, 3)).astype(np.float32))
    save_vectors(users, tmp_path / "users", {"params": {"dim": 3}})
    return vectors, tmp_path / "v", tmp_path / "users"


@pytest.fixture
def table():
    # ids as integers (keys "10"), one unknown id (99), one missing, one key with a space
    return pl.DataFrame({"item": [30, 10, 99, None, 10], "user": ["u2", "u1", "u1", "u3", "u2"],
                         "y": [1, 0, 1, 0, 1]})


def test_values_follow_rows_in_order_and_unknowns_are_null(weights, table):
    vectors, path, _ = weights
    out = catvec.features(table, vectors=str(path), cols=["item"])
    assert out.columns[:3] == ["item", "user", "y"] and len(out) == len(table)
    got = out.select([f"item_v{i}" for i in range(6)]).to_numpy()
    assert np.array_equal(got[0], vectors["30"]) and np.array_equal(got[1], vectors["10"])
    assert np.array_equal(got[4], vectors["10"])
    assert out["item_v0"].null_count() == 2 and out["item_v0"][2] is None and out["item_v5"][3] is None


def test_report_counts_unknown_rows_and_values(weights, table):
    _, path, users = weights
    result = add_features(table, {"item": str(path), "user": str(users)})
    item, user = result.columns
    assert (item.unknown_rows, item.unknown_values, item.dims) == (2, 1, 6)
    assert (user.unknown_rows, user.unknown_values, user.dims) == (1, 1, 3)
    assert "2/5 rows without a vector" in item.summary()


def test_context_and_concat_choice(weights, table):
    vectors, path, _ = weights
    ctx = catvec.features(table, vectors=str(path), cols=["item"], which="context")
    assert np.allclose(ctx.select([f"item_v{i}" for i in range(6)]).row(0), vectors.context[2])
    both = catvec.features(table, vectors=str(path), cols=["item"], which="concat")
    row = np.array(both.select([f"item_v{i}" for i in range(12)]).row(1))
    assert np.allclose(np.linalg.norm(row[:6]), 1, atol=1e-5) and np.allclose(np.linalg.norm(row[6:]), 1, atol=1e-5)


def test_reduction_is_a_pca_of_the_vectors(weights, table):
    vectors, path, _ = weights
    out = catvec.features(table, vectors=str(path), cols=["item"], k=2)
    assert [c for c in out.columns if c.startswith("item_")] == ["item_pc0", "item_pc1"]
    scores = reduce_dims(vectors.matrix, 2)
    assert np.allclose(out.select(["item_pc0", "item_pc1"]).row(0), scores[2], atol=1e-5)
    # the principal axes carry the most variance: the first beats any single original direction
    assert scores[:, 0].var() >= (vectors.matrix - vectors.matrix.mean(0)).var(axis=0).max() - 1e-6
    assert abs(np.corrcoef(scores[:, 0], scores[:, 1])[0, 1]) < 1e-4


def test_pandas_in_pandas_out(weights, table):
    _, path, _ = weights
    out = catvec.features(table.to_pandas(), vectors=str(path), cols="item")
    assert type(out).__module__.startswith("pandas") and len(out) == 5 and out["item_v0"].isna().sum() == 2


def test_cli_writes_parquet_and_csv(weights, table, tmp_path, capsys):
    vectors, path, users = weights
    table.write_csv(tmp_path / "t.csv")
    assert main(["features", "--vectors", str(path), "--table", str(tmp_path / "t.csv"),
                 "--cols", f"item,user={users}", "--out", str(tmp_path / "o.parquet")]) == 0
    out = pl.read_parquet(tmp_path / "o.parquet")
    assert len(out) == 5 and "user_v2" in out.columns and out["user_v0"][3] is None
    assert np.allclose(out.select([f"item_v{i}" for i in range(6)]).row(1), vectors["10"])
    assert "2/5 rows without a vector" in capsys.readouterr().out
    assert main(["features", "--vectors", str(path), "--table", str(tmp_path / "t.csv"), "--cols", "item",
                 "--dims", "3", "--out", str(tmp_path / "o.csv")]) == 0
    assert pl.read_csv(tmp_path / "o.csv").columns[-3:] == ["item_pc0", "item_pc1", "item_pc2"]


def test_parse_cols():
    assert parse_cols("a, b=x/latest", "v") == {"a": "v", "b": "x/latest"}
    with pytest.raises(CatvecError, match="no vectors"):
        parse_cols("a", None)


@pytest.mark.parametrize("argv,message", [
    (["--cols", "nope"], "no column 'nope'"),
    (["--cols", "y"], "none of column 'y'"),
    (["--cols", "item", "--dims", "7"], "between 1 and the vectors' dimension 6"),
    (["--cols", "item", "--out", "{file}/inside.parquet"], "is a file"),
])
def test_bad_input_is_one_line_and_writes_nothing(weights, table, tmp_path, capsys, argv, message):
    _, path, _ = weights
    table.with_columns(pl.col("y") + 1000).write_csv(tmp_path / "t.csv")
    (tmp_path / "file").write_text("x")
    argv = [a.replace("{file}", str(tmp_path / "file")) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "o.parquet")]
    assert main(["features", "--vectors", str(path), "--table", str(tmp_path / "t.csv"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o.parquet").exists()

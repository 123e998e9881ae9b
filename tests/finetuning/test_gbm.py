"""--compare's GBM baselines (raw columns, and with the vectors), and the verdict's split."""

import json
import sys

import numpy as np
import polars as pl
import pytest

from catvec.cli.main import main
from catvec.finetuning.gbm import INSTALL_HINT
from catvec.finetuning.pipeline import finetune
from ftdata import finetune_config, labeled_rows

BASE = dict(target="big", cat_cols="item_id,color", cont_cols="x", epochs=3, batch_size=64, hidden="16", seed=3,
            compare=True, auto="off")


def split_by_item(n=400):
    """Test items are never seen in training: only their vectors say which cluster they are in."""
    frame = pl.from_pandas(labeled_rows(n))
    item = frame["item_id"].to_numpy()
    return frame.with_columns(split=pl.Series(np.where(item % 3 == 0, "test", np.where(item % 5 == 0, "val", "train"))))


@pytest.mark.parametrize("library", ["lightgbm", "catboost"])
def test_gbm_with_vectors_generalises_to_unseen_items_and_raw_ids_cannot(tmp_path, inputs, library, monkeypatch):
    pytest.importorskip(library)
    other = {"lightgbm": "catboost", "catboost": "lightgbm"}[library]
    monkeypatch.setitem(sys.modules, other, None)      # the library under test is the one found
    cfg = finetune_config(inputs, out=str(tmp_path / "m"), table="", split_col="split", **BASE)
    m = finetune(cfg, table=split_by_item()).metrics
    raw, vec = m["baselines"]["gbm_raw"], m["baselines"]["gbm_vectors"]
    assert raw["settings"]["rounds"] >= 1 and {"val_auc", "test_auc", "test_accuracy"} <= set(vec["best"])
    assert vec["best"]["test_accuracy"] >= 0.85 and vec["best"]["test_auc"] > raw["best"]["test_auc"] + 0.2
    c = m["comparison"]
    assert c["split"] == "test" and c["metric"] == "test_auc"
    assert c["baselines"]["gbm_vectors"]["value"] == vec["best"]["test_auc"]
    assert c["pretrained"] == m["test"]["test_auc"] and c["scratch"] == m["scratch"]["test"]["test_auc"]


def test_without_a_test_split_the_verdict_says_validation(tmp_path, inputs):
    m = finetune(finetune_config(inputs, out=str(tmp_path / "m"), group_col="item_id", **BASE)).metrics
    assert m["comparison"]["split"] == "validation" and m["comparison"]["metric"] == "val_auc"
    assert m["comparison"]["pretrained"] == m["best"]["val_auc"]


def test_without_a_gbm_library_one_line_says_how_and_the_other_baselines_run(tmp_path, inputs, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    monkeypatch.setitem(sys.modules, "catboost", None)
    table = tmp_path / "split.csv"
    split_by_item().write_csv(table)
    args = ["finetune", "--vectors", str(inputs[0]), "--table", str(table), "--split-col", "split",
            "--out", str(tmp_path / "m"), "--compare", "--target", "big", "--cat-cols", "item_id,color",
            "--cont-cols", "x", "--epochs", "2", "--hidden", "16", "--auto", "off"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count(INSTALL_HINT) == 1 and "verdicts on the test split" in out
    metrics = json.loads((tmp_path / "m" / "latest" / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"linear_probe", "knn"}
    assert metrics["notes"] == [f"no GBM library (LightGBM or CatBoost) is installed: {INSTALL_HINT}"]

"""--compare's baselines on the frozen vectors, test rows, class weights and the stopping metric."""

import json

import numpy as np
import polars as pl
import pytest
import torch

from catvec.base.errors import CatvecError
from catvec.finetuning.labeled import balanced_weights
from catvec.finetuning.pipeline import finetune
from catvec.finetuning.training import loss_fn
from ftdata import finetune_config, labeled_rows


BASE = dict(target="segment", cat_cols="item_id,color", cont_cols="x", epochs=3, batch_size=64, hidden="16", seed=3,
            group_col="item_id", compare=True)


def config(tmp_path, inputs, **extra):
    return finetune_config(inputs, **{"out": str(tmp_path / "models"), **BASE, **extra})


def test_compare_stores_a_linear_probe_and_knn_beside_scratch(tmp_path, inputs):
    result = finetune(config(tmp_path, inputs))
    metrics = json.loads((result.path / "metrics.json").read_text())
    base = metrics["baselines"]
    assert {"linear_probe", "knn"} <= set(base)
    assert base["linear_probe"]["settings"]["l2"] > 0 and base["knn"]["settings"]["k"] >= 1
    # clustered vectors and a label that is the cluster: the nearest labeled item is right
    assert base["knn"]["best"]["val_accuracy"] == 1.0 and base["linear_probe"]["best"]["val_accuracy"] == 1.0
    vs = metrics["comparison"]["baselines"]
    assert vs["knn"]["value"] == 1.0 and vs["knn"]["better"] in ("knn", "tie")
    assert metrics["comparison"]["better"] in ("pretrained", "scratch", "tie")
    report = (result.path / "report.md").read_text()
    assert "vs linear_probe" in report and "vs knn" in report


def test_rows_marked_test_are_scored_once_and_never_trained_on(tmp_path, inputs):
    frame = pl.from_pandas(labeled_rows(400))
    split = np.where(frame["item_id"].to_numpy() % 3 == 0, "test",
                     np.where(frame["item_id"].to_numpy() % 3 == 1, "val", "train"))
    frame = frame.with_columns(split=pl.Series(split))
    result = finetune(config(tmp_path, inputs, table="", split_col="split", group_col=""), table=frame)
    m = result.metrics
    assert set(m["test"]) == {"test_loss", "test_accuracy", "test_macro_f1", "test_log_loss"}
    assert "test_accuracy" in m["scratch"]["test"] and "test_accuracy" in m["baselines"]["knn"]["best"]
    assert not any(k.startswith("test_") for row in m["history"] for k in row)


def test_balanced_class_weights_and_the_weighted_loss():
    weights = balanced_weights(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(weights, [4 / 6, 2.0, 0.0])
    out, y = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), torch.tensor([0, 1])
    w = torch.tensor([1.0, 3.0, 1.0])
    log_p = torch.log_softmax(out, dim=1)
    expected = -(1.0 * log_p[0, 0] + 3.0 * log_p[1, 1]) / 4.0
    assert float(loss_fn("multiclass", out, y, w)) == pytest.approx(float(expected))


def test_early_stopping_reads_the_named_metric(tmp_path, inputs):
    result = finetune(config(tmp_path, inputs, metric="macro_f1", epochs=6, patience=6, class_weight="balanced"))
    m = result.metrics
    assert m["main_metric"] == "val_macro_f1" and m["comparison"]["metric"] == "val_macro_f1"
    scores = [row["val_macro_f1"] for row in m["history"]]
    assert m["best_epoch"] == 1 + int(np.argmax(scores))


@pytest.mark.parametrize("extra,message", [({"metric": "f2"}, "metric must be one of"),
                                           ({"class_weight": "inverse"}, "class_weight must be one of")])
def test_bad_metric_and_class_weight_are_refused(tmp_path, inputs, extra, message):
    with pytest.raises(CatvecError, match=message):
        config(tmp_path, inputs, **extra)

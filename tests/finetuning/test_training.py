"""The tabular model, the fit loop (early stopping, resume) and the model directory round trip."""

import dataclasses
import json
import signal
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch

from catvec.finetuning.config import Setup, Split, Table
from catvec.finetuning.pipeline import finetune
from catvec.finetuning.steps import (Trained, align_columns, assign_roles, build_vocabs, export_model, load_pretrained,
                                     load_table, prepare_data, train_model)
from catvec.finetuning.predict import predict
from catvec.finetuning.model import TabularEmbeddingModel, embedding_size
from catvec.finetuning.modeldir import load_model
from catvec.finetuning.labeled import feature_arrays
from catvec.finetuning.training import predict_output
from ftdata import finetune_config


# these tests are about one fit; --auto has its own (test_auto.py)
BASE = dict(target="y", cat_cols="item_id,color", cont_cols="x", epochs=4, batch_size=64, hidden="16", seed=3,
            auto="off")


def config(tmp_path, inputs, **extra):
    return finetune_config(inputs, **{"out": str(tmp_path / "models"), **BASE, **extra})


def test_embedding_size_rules():
    assert embedding_size(200) == 31 and embedding_size(4) == 3
    assert embedding_size(200, "half") == 50 and embedding_size(7, "half") == 4
    assert embedding_size(10**7) == 600


@pytest.mark.parametrize("interactions", [False, True])
def test_forward_shapes(interactions):
    spec = {"columns": [{"name": "a.b", "num": 10, "dim": 4, "mode": "scratch"},
                        {"name": "c", "num": 5, "dim": 4, "mode": "scratch"}],
            "n_cont": 3, "out_dim": 7, "hidden": [8, 6], "dropout": 0.1, "emb_dropout": 0.1,
            "interactions": interactions}
    model = TabularEmbeddingModel(spec)
    out = model(torch.zeros(5, 2, dtype=torch.int64), torch.zeros(5, 3))   # (5, 2), (5, 3) -> (5, 7)
    assert out.shape == (5, 7)
    assert model.mlp[0].in_features == 4 + 4 + 3 + (4 if interactions else 0)
    assert model.last_emb_l2.ndim == 0


def prepared_steps(cfg) -> dict:
    """The finetune steps up to prepare_data, called one by one as the pipeline does."""
    table, split, setup = Table.of(cfg), Split.of(cfg), Setup.of(cfg)
    labeled = load_table(table)
    vectors = load_pretrained(table, setup.init)
    roles = assign_roles(labeled, table, split, vectors)
    vocabs = build_vocabs(labeled, roles, vectors, setup.init, split, cfg.seed)
    aligned = align_columns(labeled, roles, vocabs, vectors, setup.init, setup.model, cfg.seed)
    prepared = prepare_data(labeled, roles, vocabs, split, cfg.key_stats, cfg.seed)
    return dict(labeled=labeled, roles=roles, vocabs=vocabs, aligned=aligned, prepared=prepared, setup=setup)


def test_scaling_uses_training_rows_only(tmp_path, inputs):
    cfg = config(tmp_path, inputs)
    run = prepared_steps(cfg)
    prepared = run["prepared"]
    x = run["labeled"].frame["x"].cast(float).to_numpy()
    assert prepared.scaler.mean[0] == pytest.approx(x[~prepared.is_val].mean())
    assert prepared.scaler.mean[0] != pytest.approx(x.mean(), abs=1e-9)
    assert abs(prepared.data.x_cont[0].mean()) < 1e-5


def test_save_load_predict_gives_identical_outputs(tmp_path, inputs):
    cfg = config(tmp_path, inputs, mode="partial")
    run = prepared_steps(cfg)
    labeled, roles, vocabs, aligned, prepared = (run[k] for k in ("labeled", "roles", "vocabs", "aligned", "prepared"))
    fit, _ = train_model(cfg.mode, roles, vocabs, aligned, prepared, run["setup"])
    staging = tmp_path / "staged"
    staging.mkdir()
    export_model(staging, "v-test", {}, labeled.name, roles, vocabs, aligned, prepared, Trained(run["setup"], fit))
    loaded = load_model(staging)
    x_cat, x_cont = feature_arrays(labeled.frame, loaded.roles, loaded.vocabs, loaded.scaler, labeled.name)
    np.testing.assert_array_equal(predict_output(loaded.model, x_cat, x_cont),
                                  predict_output(fit.model, x_cat, x_cont))


def test_training_lowers_validation_loss_and_picks_the_best_epoch(tmp_path, inputs):
    result = finetune(config(tmp_path, inputs, epochs=8, patience=8))
    history = result.metrics["history"]
    assert [row["epoch"] for row in history] == list(range(1, 9))
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    best = min(history, key=lambda row: row["val_loss"])
    assert result.metrics["best_epoch"] == best["epoch"]
    assert set(history[0]) == {"epoch", "train_loss", "train_rmse", "train_mae", "val_loss", "val_rmse", "val_mae"}


def test_early_stopping_stops_after_patience(tmp_path, inputs):
    result = finetune(config(tmp_path, inputs, epochs=40, patience=1, lr=0.2))
    m = result.metrics
    assert m["stopped_early"] and len(m["history"]) < 40
    assert len(m["history"]) == m["best_epoch"] + 1


KILL_AT_EPOCH_3 = """
import json, os, signal, sys
from catvec.base.config import build_config
from catvec.finetuning.config import FinetuneConfig
from catvec.finetuning.pipeline import finetune

def on_epoch(mode, epoch, total, info):
    if epoch == 3:
        os.kill(os.getpid(), signal.SIGKILL)   # no cleanup, no finally: like a killed job

finetune(build_config(FinetuneConfig, **json.loads(sys.argv[1])), on_epoch=on_epoch)
"""


def test_resume_after_a_killed_process_ends_like_an_uninterrupted_run(tmp_path, inputs):
    settings = dict(exact=True, epochs=6, patience=6)
    whole = finetune(config(tmp_path, inputs, out=str(tmp_path / "a"), **settings))
    cfg = config(tmp_path, inputs, out=str(tmp_path / "b"), **settings)
    killed = subprocess.run([sys.executable, "-c", KILL_AT_EPOCH_3, json.dumps(dataclasses.asdict(cfg))],
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "b" / "latest").exists()
    assert list((tmp_path / "b" / ".checkpoints").glob("*/finetune/checkpoint.json"))
    resumed = finetune(config(tmp_path, inputs, out=str(tmp_path / "b"), resume=True, **settings))
    assert resumed.metrics["resumed_from"] == 3
    assert resumed.metrics["history"] == whole.metrics["history"]
    a = load_model(whole.path).model.state_dict()
    b = load_model(resumed.path).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list((tmp_path / "b" / ".checkpoints").glob("*/finetune/checkpoint.json"))  # removed when done


@pytest.mark.parametrize("target,task,metric", [("segment", "multiclass", "val_accuracy"),
                                                ("big", "binary", "val_auc")])
def test_classification_tasks(tmp_path, inputs, target, task, metric):
    result = finetune(config(tmp_path, inputs, target=target, epochs=3))
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert metrics["task"] == task and metrics["main_metric"] == metric
    assert metric in metrics["history"][0] and "val_loss" in metrics["history"][0]
    scored = predict(result.path, inputs[1], tmp_path / "scored.csv").path
    frame = pl.read_csv(scored)
    classes = sorted(pl.read_csv(inputs[1])[target].unique().to_list())
    assert set(frame["prediction"].unique().to_list()) <= set(classes)
    if task == "multiclass":
        probabilities = frame.select([f"p_{c}" for c in classes]).to_numpy()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    else:  # the probability of the second class, which the prediction follows
        assert ((frame["p_yes"] >= 0.5) == (frame["prediction"] == "yes")).all()


@pytest.mark.parametrize("sparse", [False, True])
def test_unfreeze_after_makes_frozen_rows_train(tmp_path, inputs, sparse):
    from catvec.base.vectors import load_vectors

    result = finetune(config(tmp_path, inputs, mode="frozen", unfreeze_after=1, epochs=3, patience=3,
                             embedding_lr=0.05, sparse=sparse))
    assert result.metrics["best_epoch"] > 1          # the best model is one trained after unfreezing
    loaded = load_model(result.path)
    assert loaded.model.spec["columns"][0]["mode"] == "finetune"
    exported = load_vectors(result.path / "embeddings" / "item_id")
    source = load_vectors(inputs[0])
    assert any(not np.array_equal(exported[k], source[k]) for k in source.keys)


def test_split_by_column_and_by_group():
    from catvec.base.errors import CatvecError
    from catvec.finetuning.labeled import split_rows

    frame = pl.DataFrame({"g": ["a", "a", "b", "b", "c", "c", "d", "d"],
                          "s": ["train", "val", "TRAIN", "train", "Val", "train", "train", "train"]})
    assert split_rows(frame, 0.5, 0, split_col="s").tolist() == [False, True, False, False, True, False, False, False]
    is_val = split_rows(frame, 0.5, 0, group_col="g")
    groups = frame["g"].to_numpy()
    assert is_val.sum() == 4 and all(len(set(is_val[groups == g])) == 1 for g in "abcd")
    with pytest.raises(CatvecError, match="split column 's' holds 'holdout'"):
        split_rows(frame.with_columns(pl.lit("holdout").alias("s")), 0.5, 0, split_col="s")


def test_metrics_against_hand_computed_values():
    from catvec.finetuning.metrics import auc, macro_f1, task_metrics

    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)     # ties count half
    assert macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2) == pytest.approx((2 / 3 + 0.8) / 2)
    m = task_metrics("regression", np.array([1.0, 2.0]), np.array([2.0, 2.0]))
    assert m == {"rmse": pytest.approx(np.sqrt(0.5)), "mae": pytest.approx(0.5)}


@pytest.mark.parametrize("mode", ["frozen", "partial"])
def test_exported_rows_of_a_fixed_layer_equal_the_pretrained_vectors(tmp_path, inputs, mode):
    from catvec.base.vectors import load_vectors

    result = finetune(config(tmp_path, inputs, mode=mode, weight_decay=0.5, epochs=2))
    exported = load_vectors(result.path / "embeddings" / "item_id")
    source = load_vectors(inputs[0])
    assert all(exported[k].tobytes() == source[k].tobytes() for k in source.keys)


def test_unit_normalised_inputs_are_the_pretrained_rows_scaled_to_length_one(tmp_path, inputs):
    from catvec.base.vectors import load_vectors
    from catvec.base.scoring import unit_rows

    result = finetune(config(tmp_path, inputs, mode="frozen", normalize="unit", epochs=2))
    exported = load_vectors(result.path / "embeddings" / "item_id")
    source = load_vectors(inputs[0])
    expected = unit_rows(source.matrix)
    assert all(exported[k].tobytes() == expected[i].tobytes() for i, k in enumerate(source.keys))

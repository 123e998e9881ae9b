"""`--blend`: a kNN vote blended into the chosen model, k and weight picked on the labels,
the validation labels used for scoring afterwards, and `catvec predict` doing the same."""

import json
import types

import numpy as np
import polars as pl
import pytest
import torch

from catvec.base.errors import CatvecError
from catvec.cli.main import main
from catvec.finetuning import ensemble
from catvec.finetuning.config import FinetuneConfig
from catvec.finetuning.ensemble import blend_enabled, fit_blend, keep_member, knn_vote
from catvec.finetuning.metrics import auc
from catvec.finetuning.model import TabularEmbeddingModel
from catvec.finetuning.modeldir import load_model
from catvec.finetuning.training import TrainData, predict_output
from ftdata import item_vectors, write_inputs


def clustered_data(model_knows_label: bool, seed: int = 0):
    """A frozen linear model over one pretrained column (the ftdata items) whose output reads
    only the continuous column: the label itself, or noise. The label is the item's cluster
    parity, so a kNN vote on the item vectors knows it."""
    vectors = item_vectors()
    rng = np.random.default_rng(seed)
    num = len(vectors) + 1
    matrix = np.vstack([np.zeros((1, vectors.dim), np.float32), vectors.matrix])
    spec = {"columns": [{"name": "item", "num": num, "dim": vectors.dim, "mode": "frozen"}], "n_cont": 1,
            "out_dim": 1, "hidden": []}
    model = TabularEmbeddingModel(spec, matrices={"item": matrix}, masks={"item": np.arange(num) > 0})
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.weight[0, -1] = 1.0                    # output = the continuous column
    splits = []
    for n in (300, 100, 100):
        rows = rng.integers(1, num, n)
        y = (((rows - 1) // 10) % 2).astype(np.float32)
        cont = (y * 2.0 - 1.0) if model_knows_label else rng.normal(size=n)
        splits.append((rows[:, None], cont[:, None].astype(np.float32), y))
    data = TrainData(task="binary", x_cat=tuple(s[0] for s in splits), x_cont=tuple(s[1] for s in splits),
                     y=tuple(s[2] for s in splits), n_classes=2)
    return model, data


def test_leave_one_out_vote_never_reads_the_row_own_label():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 4)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    y = rng.integers(0, 2, 50)
    flipped = y.copy()
    flipped[3] = 1 - y[3]
    own = knn_vote(ref, ref, y, 5, "binary", leave_one_out=True)
    assert own[3] == pytest.approx(knn_vote(ref, ref, flipped, 5, "binary", leave_one_out=True)[3])
    assert own[3] != pytest.approx(knn_vote(ref, ref, flipped, 5, "binary")[3])   # without: it counts


def test_weight_is_picked_on_validation():
    model, data = clustered_data(model_knows_label=False)
    blend, record = fit_blend(model, [], data, [0], "val_auc")
    assert blend is not None and blend.weight == max(ensemble.BLEND_WEIGHTS)     # the noise model gains most
    assert record["val_auc"]["0.0"] < record["val_auc"][f"{blend.weight:.1f}"]
    assert blend.k in ensemble.BLEND_K and blend.rows.shape == (300, 1)
    out = blend.output(model, data.x_cat[2], data.x_cont[2])
    assert out.shape == (100, 1) and auc(data.y[2], out[:, 0]) > 0.9
    # a model that already knows the label: no weight beats 0 on validation, so no blend
    model, data = clustered_data(model_knows_label=True)
    blend, record = fit_blend(model, [], data, [0], "val_auc")
    assert blend is None and record["weight"] == 0.0
    # with another member the average is kept even without a vote, and is what it outputs
    other, _ = clustered_data(model_knows_label=False)
    blend, record = fit_blend(model, [other], data, [0], "val_auc")
    assert blend is not None and blend.weight == 0.0 and record["members"] == 2
    x_cat, x_cont = data.x_cat[2], data.x_cont[2]
    mean = (predict_output(model, x_cat, x_cont) + predict_output(other, x_cat, x_cont)) / 2
    np.testing.assert_allclose(blend.output(model, x_cat, x_cont), mean, rtol=1e-6)


def test_keep_member_keeps_the_best_few_on_validation(monkeypatch):
    monkeypatch.setattr(ensemble, "MEMBERS", 5)

    def fit(score):
        return types.SimpleNamespace(history=[{"epoch": 1, "val_rmse": 9.0}, {"epoch": 2, "val_rmse": score}],
                                     best_epoch=2)

    members = []
    fits = [fit(s) for s in (5.0, 1.0, 3.0, float("nan"), 2.0, 4.0, 0.5)]
    for f in fits:
        keep_member(members, f, "val_rmse")                        # lower is better
    assert [m[2] for m in members] == [fits[6], fits[1], fits[4], fits[2], fits[5]]
    assert len(members) == 5


def test_only_after_a_search_for_binary_and_regression_with_vectors():
    assert blend_enabled("auto", "binary", True, True) and blend_enabled("auto", "regression", True, True)
    assert not blend_enabled("auto", "multiclass", True, True)
    assert not blend_enabled("auto", "binary", False, True)       # --auto off: the model asked for
    assert not blend_enabled("auto", "binary", True, False)
    assert not blend_enabled("off", "binary", True, True)


@pytest.fixture
def split_table(tmp_path):
    """ftdata's inputs with a split column (240 train, 80 val, 80 test rows) and a noisy binary
    target `liked` (y above 5 after noise), so no model scores it perfectly."""
    vectors_dir, table = write_inputs(tmp_path)
    frame = pl.read_csv(table)
    rng = np.random.default_rng(3)
    split = np.array(["train"] * 240 + ["val"] * 80 + ["test"] * 80)
    rng.shuffle(split)
    liked = np.where(frame["y"].to_numpy() + rng.normal(0, 1.5, frame.height) > 5, "yes", "no")
    frame = frame.with_columns(split=pl.Series(split), liked=pl.Series(liked))
    frame.write_csv(table)
    return vectors_dir, table, frame


def test_predict_reproduces_the_blended_model(tmp_path, split_table, monkeypatch):
    vectors_dir, table, frame = split_table
    monkeypatch.setattr(ensemble, "BLEND_WEIGHTS", (0.5,))           # a blend whatever validation says
    out = tmp_path / "models"
    assert main(["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "liked",
                 "--cat-cols", "item_id,color", "--cont-cols", "x", "--split-col", "split", "--out", str(out),
                 "--auto", "on", "--epochs", "5", "--quiet"]) == 0
    loaded = load_model(out)
    metrics = json.loads((out / "latest" / "metrics.json").read_text())
    record = metrics["auto"]["blend"]
    assert loaded.blend is not None and loaded.blend.weight == 0.5 and record["weight"] == 0.5
    assert len(loaded.blend.y) == 320                                 # train + validation rows vote
    assert len(loaded.blend.members) == ensemble.MEMBERS - 1          # the next best candidates, averaged
    assert loaded.key_stats.counts[0].sum() == 320                   # and feed the key statistics
    test = frame.filter(pl.col("split") == "test")
    assert main(["predict", "--model", str(out), "--table", str(table), "--out", str(tmp_path / "p.csv"),
                 "--quiet"]) == 0
    scored = pl.read_csv(tmp_path / "p.csv").filter(pl.col("split") == "test")
    y = (test["liked"] == "yes").to_numpy().astype(int)
    p = scored["p_yes"].to_numpy()
    assert 0.6 < auc(y, p) < 0.99                                     # a task the check can see
    assert auc(y, p) == pytest.approx(metrics["test"]["test_auc"], abs=1e-9)
    log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert log_loss == pytest.approx(metrics["test"]["test_loss"], rel=1e-4)
    assert "test_before" in record
    # blend.safetensors edited by hand: predict refuses in one line, writes nothing
    blend_file = out / "latest" / "blend.safetensors"
    data = bytearray(blend_file.read_bytes())
    data[-1] ^= 0xFF
    blend_file.write_bytes(bytes(data))
    capsys_out = tmp_path / "p2.csv"
    assert main(["predict", "--model", str(out), "--table", str(table), "--out", str(capsys_out), "--quiet"]) == 2
    assert not capsys_out.exists()


def test_blend_off_writes_none_and_a_bad_value_is_refused(tmp_path, split_table, capsys):
    vectors_dir, table, _ = split_table
    base = ["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "big", "--cat-cols",
            "item_id", "--split-col", "split", "--auto", "on", "--epochs", "3", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "off"), "--blend", "off"]) == 0
    assert load_model(tmp_path / "off").blend is None
    assert "blend" not in json.loads((tmp_path / "off" / "latest" / "metrics.json").read_text())["auto"]
    multiclass = [*base[:6], "segment", *base[7:]]                   # auto, but a multiclass target: none
    assert main([*multiclass, "--out", str(tmp_path / "multi")]) == 0
    assert load_model(tmp_path / "multi").blend is None
    with pytest.raises(SystemExit) as exc:
        main([*base, "--out", str(tmp_path / "bad"), "--blend", "always"])
    assert exc.value.code == 2 and "--blend" in capsys.readouterr().err
    with pytest.raises(CatvecError, match="blend"):
        FinetuneConfig(blend="always").validate()                   # a TOML file or a flow: the same check
    assert not (tmp_path / "bad" / "latest").exists()


def test_saved_blend_loads_the_same_and_a_damaged_one_is_refused(tmp_path):
    import dataclasses

    from catvec.finetuning.ensemble import load_blend, save_blend
    from catvec.finetuning.modeldir import _spec_problem

    model, data = clustered_data(model_knows_label=False)
    other, _ = clustered_data(model_knows_label=True)
    blend, _ = fit_blend(model, [other], data, [0], "val_auc")
    save_blend(blend, tmp_path / "blend.safetensors")
    loaded = load_blend(tmp_path / "blend.safetensors", "binary", 1, [61], _spec_problem)
    x_cat, x_cont = data.x_cat[2], data.x_cont[2]
    np.testing.assert_array_equal(loaded.output(model, x_cat, x_cont), blend.output(model, x_cat, x_cont))
    with pytest.raises(CatvecError, match="reference rows"):
        load_blend(tmp_path / "blend.safetensors", "binary", 1, [40], _spec_problem)   # rows past the vocab
    other.spec["hidden"] = [4]                                        # a spec its tensors do not match
    save_blend(dataclasses.replace(blend, members=[other]), tmp_path / "bad.safetensors")
    with pytest.raises(CatvecError, match="member 0"):
        load_blend(tmp_path / "bad.safetensors", "binary", 1, [61], _spec_problem)

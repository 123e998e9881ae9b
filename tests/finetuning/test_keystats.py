"""Per-key target statistics (`--key-stats`): values, no leak of a row's own label, saved
with the model, the same inputs at predict time, inherited by a warm start."""

import json

import numpy as np
import polars as pl
import pytest

from catvec.cli.main import main
from catvec.finetuning.keystats import KEY_STATS_FOLDS, SMOOTHING, fit_key_stats, key_stat_columns, out_of_fold
from catvec.finetuning.modeldir import load_model, model_inputs
from ftdata import write_inputs

FAST = ["--epochs", "3", "--batch-size", "64", "--hidden", "16", "--auto", "off"]


@pytest.fixture
def inputs(tmp_path):
    return write_inputs(tmp_path)


def test_smoothed_rate_logit_and_log_count_per_key():
    x_cat = np.array([[1], [1], [1], [2], [0]])
    y = np.array([1, 1, 0, 0, 1])
    stats = fit_key_stats(x_cat, y, [3], "binary")
    assert stats.prior == pytest.approx(0.6)
    feats = stats.features(np.array([[1], [2], [0]]))
    rate = (2 + SMOOTHING * 0.6) / (3 + SMOOTHING)
    assert feats[0, 0] == pytest.approx(np.log(rate / (1 - rate)))
    assert feats[:, 1] == pytest.approx(np.log1p([3, 1, 1]))
    unseen = fit_key_stats(x_cat, y, [4], "binary").features(np.array([[3]]))
    assert unseen[0, 0] == pytest.approx(np.log(0.6 / 0.4)) and unseen[0, 1] == 0.0     # the prior, count 0


def test_regression_statistic_is_the_smoothed_mean():
    stats = fit_key_stats(np.array([[0], [0], [1]]), np.array([2.0, 4.0, -1.0]), [2], "regression")
    prior = 5.0 / 3
    assert stats.features(np.array([[0]]))[0, 0] == pytest.approx((6 + SMOOTHING * prior) / (2 + SMOOTHING))


def test_training_rows_never_see_their_own_label():
    rng = np.random.default_rng(0)
    x_cat = rng.integers(0, 5, (200, 2))
    y = rng.integers(0, 2, 200)
    oof = out_of_fold(x_cat, y, [5, 5], "binary", seed=3)
    flipped = y.copy()
    flipped[7] = 1 - y[7]
    # a row's own label moves every other row's statistics but never its own
    assert oof[7] == pytest.approx(out_of_fold(x_cat, flipped, [5, 5], "binary", seed=3)[7])
    train = np.zeros(260, dtype=bool)
    train[:200] = True
    all_rows = np.concatenate([x_cat, rng.integers(0, 5, (60, 2))])
    stats, cols = key_stat_columns(all_rows, np.concatenate([y, np.zeros(60, dtype=int)]), train, [5, 5],
                                   "binary", seed=3)
    np.testing.assert_allclose(cols[:200], oof)
    np.testing.assert_allclose(cols[200:], stats.features(all_rows[200:]))   # other rows: every training row
    # out of fold, a key's count is what the other folds hold: fewer than all its training rows
    for j in range(2):
        full = np.log1p(stats.counts[j][x_cat[:, j]])
        assert (cols[:200, 2 + j] < full).all() and KEY_STATS_FOLDS > 1


def test_model_dir_holds_the_statistics_and_predict_reproduces_the_inputs(tmp_path, inputs):
    vectors_dir, table = inputs
    out = tmp_path / "models"
    assert main(["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "big",
                 "--cat-cols", "item_id,color", "--cont-cols", "x", "--out", str(out), "--quiet", *FAST]) == 0
    loaded = load_model(out)
    assert loaded.key_stats is not None and len(loaded.key_stats.sums) == 2
    assert loaded.model.spec["n_cont"] == 1 + 2 * 2                     # x, then a statistic and a count per column
    assert len(loaded.scaler.mean) == 5
    frame = pl.read_csv(table)
    x_cat, x_cont = model_inputs(loaded, frame, "labels.csv")
    assert x_cont.shape == (frame.height, 5) and np.isfinite(x_cont).all()
    counts = loaded.key_stats.counts[0]
    assert counts.sum() == pytest.approx(frame.height * 0.8, abs=frame.height * 0.1)   # the training rows only
    assert main(["predict", "--model", str(out), "--table", str(table), "--out", str(tmp_path / "p.csv"),
                 "--quiet"]) == 0
    scored = pl.read_csv(tmp_path / "p.csv")
    p = scored["p_yes"].to_numpy()
    assert np.isfinite(p).all() and ((p >= 0.5) == (frame["big"] == "yes").to_numpy()).mean() > 0.8


def test_key_stats_off_and_multiclass_models_have_none(tmp_path, inputs):
    vectors_dir, table = inputs
    for target, extra in (("big", ["--key-stats", "off"]), ("segment", [])):
        out = tmp_path / f"m-{target}"
        assert main(["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", target,
                     "--cat-cols", "item_id", "--cont-cols", "x", "--out", str(out), "--quiet", *FAST, *extra]) == 0
        loaded = load_model(out)
        assert loaded.key_stats is None and loaded.model.spec["n_cont"] == 1
        files = json.loads((out / "latest" / "manifest.json").read_text())["files"]
        assert "keystats.safetensors" not in files


def test_warm_start_keeps_the_setting_of_the_model(tmp_path, inputs, capsys):
    vectors_dir, table = inputs
    base = ["--vectors", str(vectors_dir), "--table", str(table), "--quiet"]
    first = tmp_path / "first"
    assert main(["finetune", *base, "--target", "big", "--cat-cols", "item_id", "--cont-cols", "x",
                 "--out", str(first), "--key-stats", "off", *FAST]) == 0
    assert main(["finetune", *base, "--warm-start", str(first), "--out", str(tmp_path / "second"),
                 "--epochs", "2"]) == 0
    assert load_model(tmp_path / "second").key_stats is None        # off, as the model was trained
    with_stats = tmp_path / "third"
    assert main(["finetune", *base, "--target", "big", "--cat-cols", "item_id", "--cont-cols", "x",
                 "--out", str(with_stats), *FAST]) == 0
    assert main(["finetune", *base, "--warm-start", str(with_stats), "--out", str(tmp_path / "fourth"),
                 "--epochs", "2"]) == 0
    assert load_model(tmp_path / "fourth").key_stats is not None
    assert main(["finetune", *base, "--warm-start", str(with_stats), "--out", str(tmp_path / "fifth"),
                 "--key-stats", "off"]) == 2
    assert "key_stats" in capsys.readouterr().err

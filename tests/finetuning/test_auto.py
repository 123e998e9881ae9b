"""--auto: candidates, explicit flags winning, the choice recorded, and the L-BFGS linear head."""

import json

import numpy as np
import pytest

from catvec.finetuning.config import FinetuneConfig, Setup
from catvec.base.errors import CatvecError
from catvec.finetuning.auto import auto_enabled, candidates, describe, explicit
from catvec.finetuning.pipeline import finetune
from catvec.finetuning.predict import predict
from ftdata import finetune_config


BASE = dict(target="segment", cat_cols="item_id", cont_cols="x", epochs=3, batch_size=64, seed=3,
            group_col="item_id")


def config(tmp_path, inputs, **extra):
    return finetune_config(inputs, **{"out": str(tmp_path / "models"), **BASE, **extra})


def setups(**settings):
    return Setup.of(FinetuneConfig(**settings))


def test_candidates_search_head_mode_and_regularisation_unless_given():
    few = [describe(c) for c in candidates(setups(), train_rows=100, n_classes=6)]
    assert [(c["hidden"], c["solver"], c["mode"]) for c in few] == [("", "lbfgs", "frozen")] * 3
    assert sorted(c["weight_decay"] for c in few) == [1e-5, 1e-4, 1e-3]
    many = [describe(c) for c in candidates(setups(metric="macro_f1"), train_rows=5000, n_classes=6)]
    assert {(c["hidden"], c["mode"]) for c in many} == {("", "frozen"), ("128,64", "frozen"), ("128,64", "finetune")}
    assert {c["dropout"] for c in many if c["hidden"]} == {0.1, 0.3}
    assert all(c["class_weight"] == "balanced" for c in many)
    assert {c["normalize"] for c in many if not c["hidden"]} == {"unit"}
    # the MLPs also try the rows as trained (their length says how frequent a key was)
    assert sorted((c["normalize"], c["mode"], c["dropout"]) for c in many if c["hidden"]) == sorted(
        (n, m, d) for n in ("unit", "none") for m in ("frozen", "finetune") for d in (0.1, 0.3))
    assert len({c.init.normalize for c in candidates(setups(normalize="unit"), 5000, 6)}) == 1
    # explicit flags win: that axis is not searched
    pinned = candidates(setups(mode="partial", hidden="32", dropout=0.2), train_rows=5000, n_classes=6)
    assert {(c.init.mode, c.model.hidden, c.model.dropout, c.fit.solver) for c in pinned} == {
        ("partial", "32", 0.2, "adam")}
    assert explicit(setups(dropout=0.5)) == {"dropout"}
    # a candidate differs only in the searched fields: the rest of its groups stay as given
    assert {(c.fit.seed, c.init.oov_init) for c in candidates(setups(seed=7, oov_init="zeros"))} == {(7, "zeros")}


def test_auto_runs_on_small_tables_only_and_never_for_scratch():
    assert auto_enabled("auto", "finetune", 1000) and not auto_enabled("auto", "finetune", 10**6)
    assert auto_enabled("on", "finetune", 10**6) and not auto_enabled("off", "finetune", 10)
    assert not auto_enabled("auto", "scratch", 10)


def test_the_choice_is_the_best_candidate_on_validation_and_is_recorded(tmp_path, inputs):
    result = finetune(config(tmp_path, inputs, metric="macro_f1"))
    auto = json.loads((result.path / "metrics.json").read_text())["auto"]
    assert auto["metric"] == "val_macro_f1" and len(auto["candidates"]) >= 3
    best = max(c["score"] for c in auto["candidates"])
    chosen = next(c for c in auto["candidates"] if c["settings"] == auto["chosen"])
    assert chosen["score"] == best == result.metrics["best"]["val_macro_f1"]
    assert "auto: " in (result.path / "report.md").read_text()
    scored = predict(result.path, inputs[1], tmp_path / "scored.csv")
    assert scored.rows == 400


def test_auto_off_trains_exactly_the_flags(tmp_path, inputs):
    result = finetune(config(tmp_path, inputs, auto="off", hidden="16"))
    assert "auto" not in result.metrics and len(result.metrics["history"]) == 3


def test_lbfgs_linear_head_fits_the_clusters(tmp_path, inputs):
    result = finetune(config(tmp_path, inputs, auto="off", hidden="", solver="lbfgs", mode="frozen",
                             normalize="unit"))
    assert result.metrics["best"]["val_accuracy"] == 1.0 and len(result.metrics["history"]) == 1
    assert np.isfinite(result.metrics["best"]["val_loss"])


@pytest.mark.parametrize("extra,message", [({"auto": "maybe"}, "auto must be one of"),
                                           ({"solver": "lbfgs"}, "solver lbfgs trains a linear head only"),
                                           ({"normalize": "l1"}, "normalize must be one of")])
def test_bad_auto_options_are_refused(tmp_path, inputs, extra, message):
    with pytest.raises(CatvecError, match=message):
        config(tmp_path, inputs, **extra)

"""The cost of a first run: the halving search of pretrain's tuning, its progress lines,
the basket holdout share, what basket mode prints, finetune's progress summary."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from catvec.pretraining.config import PretrainConfig, Scoring, SequenceRules, SkipGram, Tuning
from catvec.base.errors import CatvecError
from catvec.cli.main import main
from catvec.cli.options import EpochProgress
from catvec.pretraining import autotune
from catvec.pretraining.pipeline import pretrain


def choose(cfg, table, tokens, on_trial=None):
    """autotune.choose_settings on cfg's groups: (cfg with the chosen settings, record)."""
    chosen, record = autotune.choose_settings(table, tokens, SkipGram.of(cfg), Scoring.of(cfg), Tuning.of(cfg),
                                              SequenceRules.of(cfg), bool(cfg.basket_col), on_trial=on_trial)
    return dataclasses.replace(cfg, **chosen), record


def cands(cfg, halving=False):
    return autotune.candidates(SkipGram.of(cfg), bool(cfg.basket_col), halving)


@pytest.fixture(scope="module")
def orders(tmp_path_factory):
    """600 orders of a planted pair (a<i>, b<i>) and 1-3 of six popular items."""
    rng = np.random.default_rng(7)
    rows = []
    for order in range(600):
        pair = int(rng.integers(15))
        extra = rng.choice(6, int(rng.integers(1, 4)), replace=False)
        rows += [(f"o{order}", item) for item in [f"a{pair}", f"b{pair}", *(f"top{int(j)}" for j in extra)]]
    path = tmp_path_factory.mktemp("orders") / "orders.csv"
    pd.DataFrame(rows, columns=["order_id", "item_id"]).to_csv(path, index=False)
    return path


def test_halving_plan_screens_briefly_and_chooses_at_full_epochs():
    first, second = autotune.halving_plan([15, 15, 15, 15])
    assert first == [(1, 4), (2, 4), (3, 4)]   # the fallback is not screened: it is always a finalist
    assert second == [(0, 15), (1, 15), (2, 15), (3, 15)]   # _search keeps the fallback and the best
    assert autotune.halving_plan([44, 44]) == [[(0, 44), (1, 44)]]   # nothing to screen
    assert autotune.halving_plan([3, 3, 3])[0] == [(1, 1), (2, 1)]   # at least one epoch


def test_halving_sample_fits_the_budget():
    cfg = PretrainConfig()
    weights = autotune.costs(False, cands(cfg, halving=True))
    assert weights == [1.0, 1.0, 0.5]   # windows 10, 10, 5 (window 30 would cost 3x): pairs grow with the window
    # 2 finals as costly as the fallback + screenings at a quarter: 2 + 0.25 x 1.5 trainings on the sample
    assert autotune.halving_events(100_000, weights) == int(100_000 * autotune.HALVING_SHARE / 2.375)
    assert autotune.halving_events(100_000, [1.0, 3.0, 1.0]) == int(100_000 * autotune.HALVING_SHARE / 3.0)
    assert autotune.halving_events(100_000, [1.0]) == int(100_000 * autotune.HALVING_SHARE)
    basket = PretrainConfig(basket_col="order_id")
    assert autotune.costs(True, cands(basket, halving=True)) == [1.0, 1.0, 1.0]


def test_the_challenger_is_the_cheapest_within_one_standard_error():
    def screened(candidate, ndcg):
        return {"candidate": candidate, "scores": {"context@1": {"ndcg": ndcg, "hr": 0, "ndcg_se": 0.01}}}

    cfg, weights = Scoring.of(PretrainConfig()), [1.0, 3.0, 1.0, 0.5]
    close = [screened(2, 0.100), screened(3, 0.095), screened(4, 0.092)]
    assert autotune._challenger(close, cfg, weights)["candidate"] == 4     # window 5 within noise of window 30
    clear = [screened(2, 0.100), screened(3, 0.085), screened(4, 0.080)]
    assert autotune._challenger(clear, cfg, weights)["candidate"] == 2     # window 30 ahead by more than noise


def test_halving_trains_the_fallback_and_the_best_screened_at_full_epochs(clustered_events, tmp_path):
    cfg = PretrainConfig(out=str(tmp_path / "o"), dim=16, vector_map=False, holdout="last", exact=True)
    table = _table(cfg, clustered_events)
    seen = []
    resolved, record = choose(cfg, table, tokens=50_000, on_trial=seen.append)
    trials = record["trials"]
    assert record["ran"] and record["budget"]["search"] == "halving" and seen == trials
    # too small for the budget's sample (under 100 users to validate on): the whole sample size
    assert record["sample_events"] == len(clustered_events) > record["budget"]["budget_events"]
    halving = cands(cfg, halving=True)
    # nothing costlier than the fallback: no 2x epochs, no window 30
    assert [(c["window"], c["epochs"]) for c in halving] == [(10, 1), (10, 1), (5, 1)]
    assert len(halving) == len(cands(cfg)) - 2
    full = autotune.auto_epochs(50_000)
    rung1 = [t for t in trials if t["rung"] == 1]
    rung2 = [t for t in trials if t["rung"] == 2]
    assert [t["candidate"] for t in rung1] == list(range(2, len(halving) + 1))
    assert all(t["params"]["epochs"] == round(full * autotune.FIRST_RUNG) for t in rung1)
    challenger = autotune._challenger(rung1, Scoring.of(cfg), autotune.costs(False, halving))
    assert [t["candidate"] for t in rung2] == [1, challenger["candidate"]]
    assert all(t["params"]["epochs"] == full for t in rung2)
    assert record["winner"]["trial"] in {t["trial"] for t in rung2}
    # the winner's settings are what the run uses
    won = next(t for t in trials if t["trial"] == record["winner"]["trial"])
    assert resolved.epochs == full and resolved.window == won["params"]["window"]
    assert resolved.scorer == record["winner"]["scorer"] and resolved.min_support == record["winner"]["min_support"]


def test_halving_samples_within_the_budget_when_that_leaves_enough_to_validate(clustered_events, tmp_path):
    big = pd.concat([clustered_events.assign(user_id=clustered_events.user_id + f"-{k}") for k in range(5)])
    cfg = PretrainConfig(out=str(tmp_path / "o"), dim=8, vector_map=False, holdout="last", exact=True, epochs=2)
    _, record = choose(cfg, _table(cfg, big), tokens=len(big))
    assert record["ran"] and record["queries"] >= autotune.MIN_QUERIES
    assert record["sample_events"] <= record["budget"]["budget_events"] + 12   # whole users: one over at most
    assert record["budget"]["budget_events"] == autotune.halving_events(len(big), [1.0, 1.0, 0.5])


def test_full_search_trains_every_candidate_once_at_full_epochs(clustered_events, tmp_path):
    cfg = PretrainConfig(out=str(tmp_path / "o"), dim=16, vector_map=False, holdout="last", exact=True,
                         tune_search="full")
    _, record = choose(cfg, _table(cfg, clustered_events), tokens=50_000)
    full = [autotune.auto_epochs(50_000) * c["epochs"] for c in cands(cfg)]
    assert [t["params"]["epochs"] for t in record["trials"]] == full and {t["rung"] for t in record["trials"]} == {1}


def test_pretrain_prints_a_line_per_tuning_trial(sample_events, tmp_path, capsys):
    assert main(["pretrain", "--events", str(sample_events), "--out", str(tmp_path / "o"), "--dim", "8",
                 "--no-vector-map", "--exact", "--tune-events", "3000"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tuning: trial")]
    manifest = pretrain_manifest(tmp_path / "o")
    trials = manifest["tuning"]["trials"]
    assert len(lines) == len(trials) >= len(cands(PretrainConfig(), halving=True))
    first = trials[0]["params"]
    assert lines[0].startswith(f"tuning: trial 1: window={first['window']} epochs={first['epochs']} ")
    assert "(rung 1) -> valid NDCG@10" in lines[0] and "(rung 2) -> valid NDCG@10" in lines[-1]


def test_bad_tuning_search_and_basket_share_are_refused(tmp_path, capsys):
    with pytest.raises(CatvecError, match="tune_search must be one of halving, full; got 'grid'"):
        PretrainConfig(tune_search="grid").validate()
    for bad in (0, 46):
        with pytest.raises(CatvecError, match=f"basket_holdout_share must be a percent between 1 and 45.*got {bad}"):
            PretrainConfig(basket_col="order_id", holdout="basket", basket_holdout_share=bad).validate()
    assert main(["pretrain", "--out", str(tmp_path / "o"), "--basket-holdout-share", "60", "-q"]) == 2
    assert "basket_holdout_share" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_basket_holdout_share_sets_how_many_baskets_are_held_out(orders, tmp_path):
    base = PretrainConfig(events=str(orders), basket_col="order_id", time_col="", user_col="", holdout="basket",
                          dim=8, epochs=2, exact=True, vector_map=False, tune=False)
    held = {}
    for share in (10, 30):
        manifest = pretrain(dataclasses.replace(base, out=str(tmp_path / f"s{share}"),
                                                basket_holdout_share=share)).manifest
        held[share] = manifest["corpus"]["heldout"]["baskets"]
        assert manifest["quality"]["vectors"]["test"]["users"] == pytest.approx(held[share] / 2, rel=0.35)
    assert 80 <= held[10] <= 160 and 300 <= held[30] <= 420   # about 20% and 60% of 600 (test + valid)


def test_basket_mode_prints_the_window_gensim_used_and_no_users(orders, tmp_path, capsys):
    assert main(["pretrain", "--events", str(orders), "--basket-col", "order_id", "--user-col", "", "--time-col", "",
                 "--out", str(tmp_path / "o"), "--dim", "8", "--exact", "--no-vector-map", "--no-tune"]) == 0
    out = capsys.readouterr().out
    manifest = pretrain_manifest(tmp_path / "o")
    longest = manifest["corpus"]["lengths"]["max"]
    assert longest == 5 and manifest["params"]["window"] == 10   # the largest order holds 2 + 3 items
    assert "window=the whole basket (largest 5)" in out and "window=10" not in out
    assert f"baskets {manifest['corpus']['sequences']} (" in out and "users 0" not in out


def test_epoch_progress_can_print_one_summary_line(capsys):
    progress = EpochProgress(200, "pretrained", every_epoch=False)
    for epoch in range(1, 207 - 100):
        progress(epoch, 200, {"loss": 1.0 / epoch})
    progress.close()
    progress.close()   # closing twice prints nothing more
    err = capsys.readouterr().err.splitlines()
    assert err == ["pretrained: 106 epochs (of at most 200); last loss=0.009434"]


def test_finetune_prints_a_summary_line_per_model_not_one_per_epoch(sample_run_for_finetune, capsys):
    vectors, labels, out = sample_run_for_finetune
    assert main(["finetune", "--vectors", str(vectors), "--table", str(labels), "--target", "spend",
                 "--cat-cols", "item_id", "--cont-cols", "price", "--epochs", "6", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "epoch 1/6" not in err and err.count(" epochs (of at most 6); last ") >= 1


@pytest.fixture
def sample_run_for_finetune(sample_events, sample_labels, tmp_path):
    pretrain(PretrainConfig(events=str(sample_events), out=str(tmp_path / "v"), dim=8, epochs=2, exact=True,
                            vector_map=False, tune=False))
    return tmp_path / "v" / "latest", sample_labels, tmp_path / "m"


def pretrain_manifest(out):
    from catvec.base.manifest import read_manifest

    return read_manifest(out / "latest")


def _table(cfg, frame):
    from catvec.pretraining.config import EventOptions
    from catvec.pretraining.events import read_events_table

    return read_events_table(EventOptions.of(cfg), frame)

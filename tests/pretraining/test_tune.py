"""catvec tune: budget, trial order, progress, and the TOML round trip into pretrain."""

import subprocess
import sys

import pytest

from catvec.base.config import build_config, read_toml

from catvec.pretraining.config import PretrainConfig, SkipGram
from catvec.base.errors import CatvecError
from catvec.pretraining.tune import SEARCH_SPACE, TuneBudget, candidate_params, tune, write_config_toml


@pytest.fixture(scope="module")
def ring_events(tmp_path_factory):
    """Seeded users walking rings of 8 items in 4 clusters (next item = ring neighbour)."""
    import numpy as np

    rng = np.random.default_rng(11)
    lines = ["user_id,item_id,timestamp"]
    for user in range(60):
        cluster, start = user % 4, int(rng.integers(8))
        lines += [f"u{user},i{cluster}_{(start + s) % 8},{1000 + s}" for s in range(7)]
    path = tmp_path_factory.mktemp("tune") / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def small_cfg(events, **extra):
    return PretrainConfig(events=str(events), dim=8, exact=True, vector_map=False, **extra)


def test_first_candidate_is_the_current_config():
    cfg = PretrainConfig(window=7, epochs=3, sample=0.5, ns_exponent=0.1)
    cands = candidate_params(SkipGram.of(cfg), seed=1)
    assert cands[0] == {"window": 7, "epochs": 3, "sample": 0.5, "ns_exponent": 0.1}
    assert len(cands) == 1 + len({tuple(c.items()) for c in cands[1:]})
    assert candidate_params(SkipGram.of(cfg), seed=1) == cands and candidate_params(SkipGram.of(cfg), seed=2) != cands
    assert all(c[k] in SEARCH_SPACE[k] for c in cands[1:] for k in c)


@pytest.mark.parametrize("bad", [{"trials": 0}, {"metric": "auc"}, {"time_limit": "soon"}, {"sample_users": -1}])
def test_budget_is_validated(bad):
    with pytest.raises(CatvecError):
        TuneBudget(**bad).validate()


def test_trial_limit_progress_and_round_trip(ring_events, tmp_path):
    seen = []
    out = tmp_path / "best.toml"
    result = tune(small_cfg(ring_events, epochs=5), TuneBudget(trials=3, sample_users=40), out, on_trial=seen.append)
    assert [t["trial"] for t in seen] == [1, 2, 3] and len(result.trials) == 3
    assert result.best["score"] == max(t["score"] for t in seen)
    assert seen[0]["params"]["epochs"] == 5  # the starting settings come first
    loaded = build_config(PretrainConfig, out)
    for name, value in result.best["params"].items():
        assert getattr(loaded, name) == value
    assert loaded.holdout == "none" and loaded.events == str(ring_events)


def test_time_limit_stops_after_the_running_trial(ring_events, tmp_path):
    result = tune(small_cfg(ring_events, epochs=2), TuneBudget(trials=50, time_limit="0.001s"), tmp_path / "t.toml")
    assert len(result.trials) == 1


def test_toml_writer_keeps_awkward_strings(tmp_path):
    cfg = PretrainConfig(user_col='a "quoted"\\ name\t\x7f', item_col="ünïcode 😀", sample=1e-05, ns_exponent=-0.5)
    path = write_config_toml(cfg, tmp_path / "c.toml", ["a comment"])
    data = read_toml(path, PretrainConfig)
    assert data["user_col"] == cfg.user_col and data["item_col"] == cfg.item_col
    assert data["sample"] == 1e-05 and data["ns_exponent"] == -0.5 and data["exact"] is False


def test_cli_tune_then_pretrain_with_the_file(ring_events, tmp_path):
    best = tmp_path / "tuned.toml"
    run = subprocess.run([sys.executable, "-m", "catvec.cli.main", "tune", "--events", str(ring_events), "--trials", "2",
                          "--epochs", "3", "--dim", "8", "--exact", "--write", str(best)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "trial 1/2" in run.stderr and "trial 2/2" in run.stderr
    assert run.stdout.strip().endswith(str(best))
    run = subprocess.run([sys.executable, "-m", "catvec.cli.main", "pretrain", "--config", str(best), "--out",
                          str(tmp_path / "art"), "-q", "--no-vector-map"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr

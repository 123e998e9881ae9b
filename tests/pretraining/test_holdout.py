"""Leave-last-out: held-out items stay out of the corpus, are stored, and are scored."""

import json
import subprocess
import sys

import polars as pl
import pytest

from catvec.pretraining.config import PretrainConfig
from catvec.pretraining.config import SequenceRules
from catvec.pretraining.corpus import build_corpus
from catvec.base.errors import CatvecError
from catvec.pretraining.events import read_events
from catvec.base.layout import HOLDOUT_FILE
from catvec.pretraining.evaluation import evaluate_version, load_heldout
from catvec.pretraining.pipeline import pretrain

EVENTS = (
    "user_id,item_id,timestamp\n"
    "u1,a,1\nu1,b,2\nu1,b,3\nu1,c,4\nu1,d,5\n"   # a b c d after collapse: d test, c valid
    "u2,x,9\nu2,y,8\nu2,z,7\n"                   # time order z y x: x test, (y valid with last2? only 3 events)
    "u3,p,1\nu3,q,2\n"                           # too short: kept whole
)


def corpus_lines(corpus):
    return [[corpus.keys[int(t)] for t in line.split()] for line in corpus.path.read_text().splitlines()]


@pytest.fixture
def table(write_csv):
    return read_events(write_csv("e.csv", EVENTS))


def test_last_item_is_kept_out_of_the_corpus(table, tmp_path):
    corpus = build_corpus(table, tmp_path / "c.txt", SequenceRules(holdout="last"))
    assert sorted(map(tuple, corpus_lines(corpus))) == [("a", "b", "c"), ("p", "q"), ("z", "y")]
    held = corpus.heldout.sort("user").rows()
    assert held == [("u1", "d", "test"), ("u2", "x", "test")]
    assert corpus.stats["heldout"] == {"events": 2, "users": 2}
    assert corpus.stats["dropped"]["repeats_collapsed"] == 1


def test_last_two_hold_out_a_validation_item(table, tmp_path):
    corpus = build_corpus(table, tmp_path / "c.txt", SequenceRules(holdout="last2"))
    assert sorted(map(tuple, corpus_lines(corpus))) == [("a", "b"), ("p", "q"), ("z", "y", "x")]
    assert corpus.heldout.sort("user", "role").rows() == [("u1", "d", "test"), ("u1", "c", "valid")]


def test_no_holdout_keeps_everything(table, tmp_path):
    corpus = build_corpus(table, tmp_path / "c.txt")
    assert corpus.heldout is None
    assert sorted(map(tuple, corpus_lines(corpus)))[0] == ("a", "b", "c", "d")


@pytest.mark.parametrize("bad", [{"holdout": "first"}, {"holdout": "last", "basket_col": "order"}])
def test_config_refuses_bad_holdout(bad):
    with pytest.raises(CatvecError, match="holdout"):
        PretrainConfig(**bad).validate()


@pytest.fixture(scope="module")
def walk_events():
    """Seeded users walking a ring of 12 items in one of 6 clusters: the next item is the
    ring neighbour of the last one, which skip-gram learns and popularity cannot."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    rows = []
    for user in range(120):
        cluster, start = user % 6, int(rng.integers(12))
        for step in range(8):
            rows.append((f"u{user}", f"r{cluster}_{(start + step) % 12}", 1_700_000_000 + 60 * step))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


@pytest.fixture(scope="module")
def held_version(walk_events, tmp_path_factory):
    out = tmp_path_factory.mktemp("held")
    events = out / "events.csv"
    walk_events.to_csv(events, index=False)
    cfg = PretrainConfig(events=str(events), out=str(out / "art"), holdout="last2", epochs=20, dim=16, sample=0.0,
                         exact=True, vector_map=False)
    return pretrain(cfg), events


def test_pretrain_stores_heldout_and_quality(held_version):
    result, events = held_version
    manifest = result.manifest
    assert HOLDOUT_FILE in manifest["files"]
    mode, stored = load_heldout(result.path / HOLDOUT_FILE)
    assert mode == "last2" and stored.height == 2 * 120
    quality = manifest["quality"]
    assert set(quality["vectors"]) == {"test", "valid"}
    # the next item is a ring neighbour: vectors find it far better than popularity
    assert quality["vectors"]["test"]["hr"] > 0.6
    assert quality["vectors"]["test"]["hr"] > 2 * quality["popularity"]["test"]["hr"]
    assert "## Quality on held-out items" in (result.path / "report.md").read_text()


def test_heldout_items_never_reach_training(held_version):
    result, _ = held_version
    corpus_dir = next((result.path.parent / ".cache").glob("corpus-*"))
    keys = json.loads((corpus_dir / "corpus.json").read_text())["keys"]
    lines = [[keys[int(t)] for t in line.split()] for line in (corpus_dir / "corpus.txt").read_text().splitlines()]
    assert sum(len(line) for line in lines) == 120 * 8 - 240


def test_evaluate_version_reproduces_the_manifest(held_version):
    result, events = held_version
    quality = evaluate_version(result.path, events=str(events))
    assert quality["vectors"] == result.manifest["quality"]["vectors"]
    assert quality["popularity"] == result.manifest["quality"]["popularity"]


def test_evaluate_refuses_other_events(held_version, write_csv):
    result, _ = held_version
    with pytest.raises(CatvecError, match="differ"):
        evaluate_version(result.path, events=str(write_csv("other.csv", EVENTS.replace("u1,", "u0_1,"))))


def test_cached_corpus_keeps_the_holdout(held_version):
    result, events = held_version
    cfg = PretrainConfig(events=str(events), out=str(result.path.parent), holdout="last2", epochs=20, dim=16, sample=0.0,
                         exact=True, vector_map=False)
    again = pretrain(cfg)
    assert again.manifest["timings"]["corpus_cached"] is True
    assert again.manifest["quality"] == result.manifest["quality"]


def test_cli_evaluate(held_version, tmp_path):
    result, events = held_version
    run = subprocess.run([sys.executable, "-m", "catvec.cli.main", "evaluate", "--vectors", str(result.path),
                          "--events", str(events)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "| test | cosine" in run.stdout and "| test | context" in run.stdout and "| valid | popularity |" in run.stdout
    assert "(default)" in run.stdout


def test_cli_evaluate_needs_a_holdout_version(tmp_path):
    out = tmp_path / "art"
    pretrain(PretrainConfig(out=str(out), epochs=1, dim=8, exact=True, vector_map=False))
    run = subprocess.run([sys.executable, "-m", "catvec.cli.main", "evaluate", "--vectors", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "--holdout last" in run.stderr and "Traceback" not in run.stderr

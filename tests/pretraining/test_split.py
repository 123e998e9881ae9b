"""The input split once into shard files: the tuner's sample, the holdout tasks and the
corpus read from the shard files are those of one read of the whole table; the files are
gone after a run and after a failure."""

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from catvec.base.vectors import load_vectors
from catvec.pretraining import autotune, pipeline
from catvec.pretraining.config import EventOptions, Extraction, PretrainConfig, SequenceRules
from catvec.pretraining.evaluation import TaskParts, build_tasks, next_item_metrics, popularity_metrics, task_parts
from catvec.pretraining.events import read_events_table
from catvec.pretraining.pipeline import pretrain
from catvec.pretraining.merge import merge_shards, rare_items
from catvec.pretraining.shards import plan_shards, run_shard, shard_jobs
from catvec.pretraining.split import SPLIT_DIR, open_split


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    """Seeded events: 400 users with 2-30 events over 120 items (zipf), time ties, and
    3-item baskets; rows in time order across users, as a log is."""
    rng = np.random.default_rng(11)
    lengths = rng.integers(2, 30, 400)
    users = np.repeat([f"u{i}" for i in range(400)], lengths)
    n = len(users)
    frame = pl.DataFrame({"user_id": users, "item_id": np.char.add("i", rng.zipf(1.4, n).clip(max=120).astype(str)),
                          "timestamp": rng.integers(0, 5_000, n) // 5 * 5,
                          "basket_id": np.char.add("b", (np.arange(n) // 3).astype(str))}).sort("timestamp")
    path = tmp_path_factory.mktemp("split") / "events.parquet"
    frame.write_parquet(path)
    return path


def groups(cfg: PretrainConfig) -> tuple:
    """(events, sequence rules, extraction): what the split and the shards take."""
    return EventOptions.of(cfg), SequenceRules.of(cfg), Extraction.of(cfg)


def configs(events: Path, **extra) -> tuple[PretrainConfig, PretrainConfig]:
    """The same settings read whole (shards=1) and split into 4 shards."""
    return (PretrainConfig(events=str(events), shards=1, **extra).validate(),
            PretrainConfig(events=str(events), shards=4, **extra).validate())


@pytest.mark.parametrize("basket", [False, True], ids=["users", "baskets"])
def test_the_sample_is_the_one_drawn_from_the_whole_table(events, tmp_path, basket):
    whole, sharded = configs(events, basket_col="basket_id" if basket else "")
    table = read_events_table(EventOptions.of(whole))
    with open_split(*groups(sharded), tmp_path / "split") as split:
        assert len(split.jobs) == 4 and all(job.part for job in split.jobs)
        assert split.height == table.frame.height
        for max_events in (500, 2_000, 10**9):
            expected = autotune.sample_events(table, max_events, seed=3, basket=basket)
            got = autotune.sample_events(split, max_events, seed=3, basket=basket)
            assert got.frame.equals(expected.frame)
            assert got.stats["events_read"] == expected.stats["events_read"]
        small = autotune.sample_events(split, 500, seed=3, basket=basket)
        assert 0 < small.frame.height < table.frame.height


@pytest.mark.parametrize("holdout,basket", [("last", False), ("last2", False), ("basket", True)],
                         ids=["last", "last2", "basket"])
def test_the_holdout_tasks_are_the_ones_of_the_whole_table(events, tmp_path, holdout, basket):
    whole, sharded = configs(events, basket_col="basket_id" if basket else "", basket_holdout_share=20,
                             holdout=holdout)
    table = read_events_table(EventOptions.of(whole))
    keys = [f"i{k}" for k in range(1, 100)]  # some items have no row: -1 in the tasks
    tasks, counts, heldout = build_tasks(table, keys, SequenceRules.of(whole))
    with open_split(*groups(sharded), tmp_path / "split") as split:
        parts, part_counts, part_heldout = build_tasks(split, keys, SequenceRules.of(sharded))
        assert set(parts) == set(tasks) and all(isinstance(t, TaskParts) for t in parts.values())
        assert np.array_equal(part_counts, counts) and part_heldout.equals(heldout)
        matrix = np.random.default_rng(0).normal(size=(len(keys), 8))
        for role, task in tasks.items():
            pieces = list(task_parts(parts[role]))
            assert len(pieces) == 4
            assert np.array_equal(np.concatenate([p.targets for p in pieces]), task.targets)
            assert np.array_equal(np.concatenate([p.items for p in pieces]), task.items)
            assert parts[role].n_users == task.n_users > 50
            assert next_item_metrics(matrix, parts[role], query_last=0 if basket else 1) == \
                next_item_metrics(matrix, task, query_last=0 if basket else 1)
            assert popularity_metrics(counts, parts[role]) == popularity_metrics(counts, task)
    assert not (tmp_path / "split").exists()


@pytest.mark.parametrize("extra", [{}, {"min_count": 3, "holdout": "last"}, {"basket_col": "basket_id", "holdout": "basket"}])
def test_the_corpus_is_the_same_with_and_without_the_split(events, tmp_path, extra):
    from catvec.pretraining.shards import extract_sharded

    cfg = PretrainConfig(events=str(events), shards=4, **extra).validate()
    options, rules, extraction = groups(cfg)
    split = extract_sharded(options, rules, extraction, tmp_path / "split.txt")
    # the per-shard scans of the whole input, without shard files
    plan = plan_shards(options, extraction)
    jobs = shard_jobs(options, rules, plan, tmp_path / "scans")
    (tmp_path / "scans").mkdir()
    assert plan.shards == 4 and not any(job.part for job in jobs)
    rare = None
    if cfg.min_count > 1:
        from dataclasses import replace

        rare = rare_items([run_shard(replace(j, count_only=True)) for j in jobs], cfg.min_count)
        jobs = [replace(j, rare_items=rare) for j in jobs]
    scans = merge_shards([run_shard(j) for j in jobs], tmp_path / "scans.txt", options, rules, plan.source.name, rare)
    digest = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    assert digest(split.path) == digest(scans.path)
    assert split.keys == scans.keys and split.stats == scans.stats
    if cfg.holdout != "none":
        assert split.heldout.height and split.heldout.equals(scans.heldout)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scans", "scans.txt", "split.txt"]  # no shard files left


def run_dirs(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if SPLIT_DIR in p.name or p.name.endswith(".shards"))


def test_a_split_run_tunes_and_evaluates_as_one_read_and_leaves_no_shard_files(events, tmp_path, monkeypatch):
    common = dict(dim=8, exact=True, holdout="last", vector_map=False, tune_events=3_000, gate=False, align=False)
    seen = []
    real = pipeline.choose_settings

    def spy(table, *args, **kwargs):  # what tuning reads, and the shard files while it runs
        seen.append((type(table).__name__, len(list(tmp_path.rglob(SPLIT_DIR)))))
        return real(table, *args, **kwargs)

    monkeypatch.setattr(pipeline, "choose_settings", spy)
    one = pretrain(PretrainConfig(events=str(events), out=str(tmp_path / "one"), shards=1, **common))
    split = pretrain(PretrainConfig(events=str(events), out=str(tmp_path / "split"), shards=4, **common))
    assert seen == [("EventsTable", 0), ("SplitEvents", 1)]
    assert split.manifest["tuning"]["ran"] and split.manifest["tuning"]["trials"]
    for key in ("chosen", "sample_events", "winner", "queries"):
        assert split.manifest["tuning"][key] == one.manifest["tuning"][key]
    assert split.manifest["quality"] == one.manifest["quality"]
    assert split.manifest["corpus"] == one.manifest["corpus"]
    a, b = load_vectors(one.path), load_vectors(split.path)
    assert a.keys == b.keys and np.array_equal(a.matrix, b.matrix)
    assert run_dirs(tmp_path / "split") == []


def test_a_failed_split_run_leaves_no_shard_files(events, tmp_path, monkeypatch):
    out = tmp_path / "out"
    seen = []

    def fail(*args, **kwargs):
        seen.extend(out.rglob(SPLIT_DIR))
        raise RuntimeError("training failed")

    monkeypatch.setattr(pipeline, "train_skipgram", fail)
    with pytest.raises(RuntimeError):
        pretrain(PretrainConfig(events=str(events), out=str(out), shards=3, holdout="last", tune=False, dim=8,
                                epochs=1))
    assert len(seen) == 1 and not seen[0].exists()  # there during the run, gone after the failure
    assert run_dirs(out) == []

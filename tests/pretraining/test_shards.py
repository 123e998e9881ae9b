"""Partitioned inputs and sharded extraction: the corpus does not depend on how the input
is split into files, into shards, or which engine ran; bad inputs say what is wrong."""

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from catvec.base.config import build_config

from catvec.pretraining.config import PretrainConfig
from catvec.base.errors import CatvecError
from catvec.base.keys import key_expr, normalize_keys
from catvec.base.tables import resolve_source
from catvec.cli.main import main
from catvec.pretraining.config import EventOptions, Extraction, SequenceRules
from catvec.pretraining.corpus import build_corpus
from catvec.pretraining.events import read_events, time_window
from catvec.pretraining.merge import length_stats
from catvec.pretraining.shards import extract_sharded

DAY = 86_400


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def events_frame():
    """Seeded events over 4 days: 300 users whose histories cross day boundaries, 200 items,
    with time ties and repeats."""
    rng = np.random.default_rng(7)
    n = 12_000
    t0 = 1_790_000_000  # 2026-09-21
    return pl.DataFrame({"user_id": rng.integers(0, 300, n),
                         "item_id": np.char.add("i", rng.zipf(1.5, n).clip(max=200).astype(str)),
                         "timestamp": t0 + rng.integers(0, 4 * DAY, n) // 7 * 7})


@pytest.fixture(scope="module")
def inputs(events_frame, tmp_path_factory):
    """The same events as one Parquet file, a CSV, and day partitions (date=YYYY-MM-DD/)."""
    root = tmp_path_factory.mktemp("inputs")
    events_frame.write_parquet(root / "one.parquet")
    events_frame.write_csv(root / "one.csv")
    dated = events_frame.with_columns(date=pl.from_epoch("timestamp").dt.date()).sort("date", maintain_order=True)
    events_frame_in_day_order = dated.drop("date")
    events_frame_in_day_order.write_parquet(root / "ordered.parquet")
    for (day,), part in dated.group_by("date", maintain_order=True):
        folder = root / "hive" / f"date={day}"
        folder.mkdir(parents=True)
        half = part.height // 2  # two files per partition
        part.drop("date")[:half].write_parquet(folder / "part-0.parquet")
        part.drop("date")[half:].write_parquet(folder / "part-1.parquet")
    return root


def one_read(path, out, **rules):
    return build_corpus(read_events(str(path)), out, SequenceRules(**rules))


def sharded(cfg: PretrainConfig, path):
    return extract_sharded(EventOptions.of(cfg), SequenceRules.of(cfg), Extraction.of(cfg), path)


@pytest.mark.parametrize("options", [{}, {"min_count": 40, "min_sequence_length": 3},
                                     {"session_gap": "6h", "max_sequence_length": 5}])
def test_shards_write_the_one_read_corpus(inputs, tmp_path, options):
    reference = one_read(inputs / "one.parquet", tmp_path / "ref.txt", **options)
    for shards in (1, 4):
        corpus = sharded(PretrainConfig(events=str(inputs / "one.parquet"), shards=shards, **options),
                         tmp_path / f"s{shards}.txt")
        assert digest(corpus.path) == digest(reference.path)
        assert corpus.keys == reference.keys and corpus.stats == reference.stats
    assert not list(tmp_path.glob("*.shards"))  # shard files are removed


def test_sequences_crossing_partitions_as_one_file(inputs, tmp_path):
    reference = one_read(inputs / "ordered.parquet", tmp_path / "ref.txt", holdout="last")
    corpus = sharded(PretrainConfig(events=str(inputs / "hive"), shards=3, holdout="last"), tmp_path / "c.txt")
    assert digest(corpus.path) == digest(reference.path)
    assert corpus.heldout.equals(reference.heldout)
    # the whole folder read at once (one shard) agrees too
    assert read_events(str(inputs / "hive")).frame.drop("row").equals(
        read_events(str(inputs / "ordered.parquet")).frame.drop("row"))


def test_csv_and_parquet_shards_agree(inputs, tmp_path):
    a = sharded(PretrainConfig(events=str(inputs / "one.csv"), shards=3), tmp_path / "a.txt")
    b = sharded(PretrainConfig(events=str(inputs / "one.parquet"), shards=2), tmp_path / "b.txt")
    assert digest(a.path) == digest(b.path)


def test_glob_list_and_file_url_name_the_same_parts(inputs):
    hive = inputs / "hive"
    parts = sorted(str(p) for p in hive.rglob("*.parquet"))
    by_folder = resolve_source(str(hive))
    assert list(by_folder.parts) == parts and by_folder.hive and by_folder.hive_keys == ["date"]
    assert list(resolve_source(str(hive / "*" / "*.parquet")).parts) == parts
    assert list(resolve_source(",".join(parts)).parts) == parts
    assert list(resolve_source("file://" + str(hive)).parts) == parts  # file:// URLs read as local files
    # cheap, deterministic checksum: same files -> same checksum, whichever way they were named
    assert by_folder.checksum() == resolve_source(",".join(parts)).checksum()
    assert by_folder.checksum() != resolve_source(",".join(parts[1:])).checksum()


def test_toml_list_of_events(inputs, tmp_path):
    parts = sorted(str(p) for p in (inputs / "hive").rglob("*.parquet"))
    toml = tmp_path / "c.toml"
    toml.write_text("events = [" + ", ".join(f'"{p}"' for p in parts) + "]\n")
    cfg = build_config(PretrainConfig, toml)
    assert resolve_source(cfg.events).parts == tuple(parts)


def test_since_until_filter_and_prune(inputs, tmp_path):
    since, until = "2026-09-22", "2026-09-23"
    lo, hi = time_window(since, until)
    full = read_events(str(inputs / "ordered.parquet")).frame
    inside = full.filter((pl.col("t") >= lo) & (pl.col("t") <= hi))
    assert 0 < inside.height < full.height
    windowed = read_events(str(inputs / "hive"), EventOptions(since=since, until=until))
    assert windowed.stats["events_read"] == inside.height
    a = sharded(PretrainConfig(events=str(inputs / "hive"), shards=3, since=since, until=until), tmp_path / "a.txt")
    b = sharded(PretrainConfig(events=str(inputs / "ordered.parquet"), shards=1, since=since, until=until),
                        tmp_path / "b.txt")
    assert digest(a.path) == digest(b.path) and a.stats["events_read"] == inside.height


def test_since_after_until_refused():
    with pytest.raises(CatvecError, match="since '2026-10-02' is after until '2026-10-01'"):
        time_window("2026-10-02", "2026-10-01")
    with pytest.raises(CatvecError, match="not an ISO-8601"):
        time_window("yesterday", "")


def test_key_expression_is_normalize_keys():
    values = {"ints": pl.Series([1, -3, None, 10**12]), "text": pl.Series(["595.0", "", "a b", None, "-0.00"]),
              "floats": pl.Series([1.0, 2.5, float("nan"), None, -3.0])}
    for series in values.values():
        frame = series.alias("k").to_frame()
        assert frame.select(key_expr("k", series.dtype)).to_series().to_list() == normalize_keys(series).to_list()


def test_length_stats_match_polars():
    lengths = pl.Series([3, 3, 4, 7, 2, 9, 9, 9, 1, 5])
    histogram = {int(v): int(c) for v, c in lengths.value_counts().rows()}
    stats = length_stats(histogram)
    assert stats["p50"] == lengths.quantile(0.5, "nearest") and stats["p90"] == lengths.quantile(0.9, "nearest")
    assert stats["mean"] == round(float(lengths.mean()), 3) and (stats["min"], stats["max"]) == (1, 9)


# ---- bad input: one line, exit 2, latest untouched -----------------------------------

@pytest.fixture
def published(tmp_path, inputs):
    out = tmp_path / "out"
    assert main(["pretrain", "--events", str(inputs / "one.parquet"), "--out", str(out), "--epochs", "1",
                 "--dim", "8", "--no-tune", "--no-vector-map", "-q"]) == 0
    return out, (out / "latest").resolve()


def refused(published, capsys, *argv) -> str:
    out, latest = published
    capsys.readouterr()
    assert main(["pretrain", "--out", str(out), "--epochs", "1", "--dim", "8", "--no-tune", "-q", "--refresh",
                 *map(str, argv)]) == 2
    assert (out / "latest").resolve() == latest
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1
    return message


def test_empty_folder(published, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "folder without .parquet files" in refused(published, capsys, "--events", tmp_path / "empty")


def test_folder_mixing_schemas(published, capsys, tmp_path, events_frame):
    folder = tmp_path / "mixed"
    folder.mkdir()
    events_frame[:100].write_parquet(folder / "a.parquet")
    events_frame[100:].with_columns(pl.col("user_id").cast(pl.Utf8)).write_parquet(folder / "b.parquet")
    message = refused(published, capsys, "--events", folder, "--shards", "2")
    assert "b.parquet" in message and "same columns and types" in message


def test_partition_with_unreadable_file(published, capsys, tmp_path, inputs):
    import shutil

    folder = tmp_path / "hive"
    shutil.copytree(inputs / "hive", folder)
    bad = sorted(folder.rglob("*.parquet"))[2]
    bad.write_bytes(b"not parquet at all")
    message = refused(published, capsys, "--events", folder)
    assert str(bad) in message and "fix or remove the file" in message


def test_partitions_with_a_loose_file(published, capsys, tmp_path, inputs):
    import shutil

    folder = tmp_path / "hive"
    shutil.copytree(inputs / "hive", folder)
    shutil.copy(inputs / "one.parquet", folder / "loose.parquet")
    assert "loose.parquet lies outside the key=value partition folders" in refused(published, capsys, "--events", folder)


def test_since_after_until_cli(published, capsys, inputs):
    message = refused(published, capsys, "--events", inputs / "hive", "--since", "2026-10-02", "--until", "2026-10-01")
    assert "is after until" in message


def test_unreachable_scheduler(published, capsys, inputs):
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.perf_counter()
    message = refused(published, capsys, "--events", inputs / "one.parquet", "--engine", "dask",
                      "--scheduler", f"tcp://127.0.0.1:{port}")
    assert f"scheduler tcp://127.0.0.1:{port}: cannot connect" in message
    assert time.perf_counter() - t < 60  # a few seconds, not a hang


def test_engine_dask_without_the_extra(published, capsys, inputs, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    message = refused(published, capsys, "--events", inputs / "one.parquet", "--engine", "dask",
                      "--scheduler", "tcp://127.0.0.1:8786")
    assert "pip install 'catvec[dask]'" in message

"""Extraction rules: order, ties, gaps, collapse, filters, chunking, baskets."""

import polars as pl
import pytest

from catvec.pretraining.config import EventOptions, SequenceRules
from catvec.pretraining.corpus import build_corpus
from catvec.base.errors import CatvecError
from catvec.pretraining.events import read_events


def lines_as_keys(corpus):
    text = corpus.path.read_text(encoding="utf-8").splitlines()
    return [[corpus.keys[int(tok)] for tok in line.split()] for line in text]


def events(users, items, times, **extra):
    return read_events(pl.DataFrame({"user_id": users, "item_id": items, "timestamp": times, **extra}),
                       EventOptions(session_col="s" if "s" in extra else ""))


def test_time_order_and_stable_ties(tmp_path):
    table = events(["u"] * 4, ["c", "a", "b", "d"], [3, 1, 2, 2])
    corpus = build_corpus(table, tmp_path / "c.txt")
    # b and d share t=2: file order decides (b came first)
    assert lines_as_keys(corpus) == [["a", "b", "d", "c"]]


def test_tie_break_ignores_row_order_of_other_users(tmp_path):
    a = build_corpus(events(["u", "v", "u"], ["x", "y", "z"], [1, 1, 2]), tmp_path / "a.txt")
    b = build_corpus(events(["v", "u", "u"], ["y", "x", "z"], [1, 1, 2]), tmp_path / "b.txt")
    assert lines_as_keys(a) == lines_as_keys(b)


def test_session_gap_splits(tmp_path):
    table = events(["u"] * 5, list("abcde"), [0, 60, 120, 4000, 4060])
    corpus = build_corpus(table, tmp_path / "c.txt", SequenceRules(session_gap="30m"))
    assert lines_as_keys(corpus) == [["a", "b", "c"], ["d", "e"]]
    assert corpus.stats["sequences"] == 2 and corpus.stats["users"] == 1


def test_session_column(tmp_path):
    table = events(["u"] * 4, list("abcd"), [0, 1, 2, 3], s=["s1", "s2", "s1", "s2"])
    assert lines_as_keys(build_corpus(table, tmp_path / "c.txt")) == [["a", "c"], ["b", "d"]]


def test_collapse_repeats(tmp_path):
    table = events(["u"] * 5, list("aabaa"), range(5))
    assert lines_as_keys(build_corpus(table, tmp_path / "c.txt")) == [["a", "b", "a"]]
    assert lines_as_keys(build_corpus(table, tmp_path / "d.txt", SequenceRules(collapse_repeats=False))) == [list("aabaa")]


def test_min_count_and_min_length(tmp_path):
    table = events(["u"] * 3 + ["v"] * 3 + ["w"], ["a", "b", "r", "a", "b", "a", "b"], range(7))
    corpus = build_corpus(table, tmp_path / "c.txt", SequenceRules(min_count=2))
    assert lines_as_keys(corpus) == [["a", "b"], ["a", "b", "a"]]
    assert corpus.stats["dropped"]["rare_items"] == 1
    assert corpus.stats["dropped"]["short_sequences"] == 1  # w has one event
    assert corpus.stats["tokens"] + corpus.stats["events_dropped"] == 7


def test_long_histories_are_chunked_not_truncated(tmp_path):
    n = 25
    table = events(["u"] * n, [f"i{k % 7}" for k in range(n)], range(n))
    corpus = build_corpus(table, tmp_path / "c.txt", SequenceRules(max_sequence_length=10))
    lines = lines_as_keys(corpus)
    assert [len(line) for line in lines] == [10, 10, 5]
    assert sum(lines, []) == [f"i{k % 7}" for k in range(n)]
    assert corpus.stats["sequences_split"] == 1


def test_gensim_limit_split_by_default(tmp_path):
    n = 10_005
    table = events(["u"] * n, [f"i{k % 50}" for k in range(n)], range(n))
    corpus = build_corpus(table, tmp_path / "c.txt")
    assert [len(line) for line in lines_as_keys(corpus)] == [10_000, 5]


def test_baskets_group_by_basket(tmp_path, write_csv):
    path = write_csv("b.csv", "order_id,item_id\no1,a\no2,c\no1,b\no2,d\no2,e\n")
    corpus = build_corpus(read_events(path, EventOptions(basket_col="order_id")), tmp_path / "c.txt")
    assert lines_as_keys(corpus) == [["a", "b"], ["c", "d", "e"]]
    assert corpus.basket and corpus.longest == 3


def test_keys_with_whitespace_survive_as_ids(tmp_path):
    keys = ["a b", "tab\tkey", "new\nline", "plain"]
    table = events(["u"] * 4, keys, range(4))
    corpus = build_corpus(table, tmp_path / "c.txt")
    assert lines_as_keys(corpus) == [keys]
    assert all(tok.isdigit() for tok in corpus.path.read_text().split())


def test_token_ids_by_frequency(tmp_path):
    table = events(["u"] * 5, ["b", "a", "b", "c", "b"], range(5))
    assert build_corpus(table, tmp_path / "c.txt").keys == ["b", "a", "c"]


def test_everything_filtered_is_an_error(tmp_path):
    with pytest.raises(CatvecError, match="every event was dropped by the filters"):
        build_corpus(events(["u", "v"], ["a", "b"], [1, 2]), tmp_path / "c.txt")

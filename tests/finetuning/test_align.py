"""Vocab building and alignment of pretrained vectors: properties and clear errors."""

import logging

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catvec.finetuning.align import align
from catvec.base.errors import CatvecError
from catvec.base.vectors import Vectors
from catvec.finetuning.vocab import UNK, Vocab, build_vocab


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    keys = [str(k) for k in range(100, 120)]
    return Vectors(keys=keys, matrix=rng.standard_normal((20, 4)).astype(np.float32))


def test_vocab_reserves_unk_and_keeps_first_appearance_order():
    vocab = build_vocab(pl.Series([3, 1, 3, None]), ["1", "9"])
    assert vocab.index_to_key == [UNK, "3", "1", "9"]
    assert vocab.encode(pl.Series(["3", "9", "404", None])).tolist() == [1, 3, 0, 0]


def test_vocab_from_a_float_column_meets_integer_keys():
    column = pl.Series([101.0, None, 102.0])  # what a CSV reader makes of ids with a gap
    vocab = build_vocab(column, pretrained_keys=None)
    assert vocab.index_to_key == [UNK, "101", "102"]
    assert vocab.encode(pl.Series(["101", "102"])).tolist() == [1, 2]


def test_vocab_counts_and_json_round_trip():
    vocab = build_vocab(pl.Series(["a", "b", "a"]))
    assert vocab.counts(pl.Series(["a", "a", "zz"])).tolist() == [1, 2, 0]
    assert Vocab.from_json(vocab.to_json()).index_to_key == vocab.index_to_key


def test_labeled_only_vocab_leaves_out_pretrained_keys(vectors):
    table = pl.Series(["100", "101"])
    assert len(build_vocab(table, vectors.keys)) == 1 + 20
    assert len(build_vocab(table, None)) == 1 + 2


keys_strategy = st.lists(st.text(alphabet="abcdef", min_size=1, max_size=3), min_size=1, max_size=25, unique=True)


@settings(max_examples=40, deadline=None)
@given(source_keys=keys_strategy, vocab_keys=keys_strategy, seed=st.integers(0, 5))
def test_align_properties(source_keys, vocab_keys, seed):
    rng = np.random.default_rng(seed)
    vectors = Vectors(source_keys, rng.standard_normal((len(source_keys), 3)).astype(np.float32))
    vocab = Vocab([UNK, *vocab_keys])
    matrix, report = align(vectors, vocab, "mean")
    assert matrix.shape == (len(vocab), 3) and matrix.dtype == np.float32
    assert report.hits + report.misses == len(vocab)
    shared = set(source_keys) & set(vocab_keys)
    assert report.hits == len(shared)
    for key in shared:
        np.testing.assert_array_equal(matrix[vocab.key_to_index[key]], vectors[key])
    # the order of the keys in the weight file does not matter
    order = rng.permutation(len(source_keys))
    shuffled = Vectors([source_keys[i] for i in order], vectors.matrix[order])
    matrix2, report2 = align(shuffled, vocab, "mean")
    np.testing.assert_allclose(matrix2, matrix, rtol=1e-6, atol=1e-6)
    assert report2.hits == report.hits


def test_oov_inits(vectors):
    vocab = Vocab([UNK, "100", "nope"])
    mean = vectors.matrix.mean(axis=0)
    m, _ = align(vectors, vocab, "mean")
    np.testing.assert_allclose(m[2], mean, rtol=1e-6)
    np.testing.assert_allclose(m[0], mean, rtol=1e-6)  # <unk> is a miss too
    m, _ = align(vectors, vocab, "zeros")
    assert not m[2].any()
    m, report = align(vectors, vocab, "normal", seed=3)
    assert report.oov_init == "normal" and np.isfinite(m).all() and m[2].std() > 0
    with pytest.raises(CatvecError, match="oov_init"):
        align(vectors, vocab, "bogus")


def test_traffic_weighted_coverage(vectors):
    vocab = build_vocab(pl.Series(["100", "100", "100", "x"]), vectors.keys)
    counts = vocab.counts(pl.Series(["100", "100", "100", "x"]))
    _, report = align(vectors, vocab, "zeros", counts, min_row_coverage=0.0)
    assert (report.rows, report.row_hits) == (4, 3)
    assert (report.table_values, report.table_value_hits) == (2, 1)
    assert report.pretrained_not_in_table == 19
    assert report.pretrained_unused == 0
    assert report.to_json()["row_coverage"] == pytest.approx(0.75)


def test_dimension_mismatch_is_a_clear_error(vectors):
    with pytest.raises(CatvecError, match="4-dimensional.*size of 8"):
        align(vectors, Vocab([UNK, "100"]), dim=8)


def test_zero_overlap_is_an_error_and_low_coverage_a_warning(vectors, caplog):
    column = pl.Series(["a", "b"])
    vocab = build_vocab(column, vectors.keys)
    with pytest.raises(CatvecError, match="none of its 2 values has a pretrained vector"):
        align(vectors, vocab, counts=vocab.counts(column))
    column = pl.Series(["100", "a", "b", "c"])
    vocab = build_vocab(column, vectors.keys)
    with caplog.at_level(logging.WARNING, logger="catvec.finetuning.align"):
        align(vectors, vocab, counts=vocab.counts(column))
    assert "low pretrained coverage: 1/4 values, 25.0% of rows" in caplog.text

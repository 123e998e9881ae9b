"""Context vectors, scorers, min_support and batched recommendation."""

import numpy as np
import pytest

from catvec.base.errors import CatvecError
from catvec.base.scoring import make_scorer, recommend_rows, top_k
from catvec.base.manifest import read_manifest
from catvec.base.vectors import Vectors, load_vectors, save_vectors

KEYS = ["a", "b", "c", "d"]


@pytest.fixture
def planted():
    """a's input vector points at b's context vector (complement), while c has a's own
    input direction (substitute); d is popular but rare in support terms it is not."""
    inp = np.array([[1, 0], [0, 1], [0.9, 0.1], [-1, 0]], dtype=np.float32)
    ctx = np.array([[0, 0], [1, 0], [0, 0], [0.2, 0]], dtype=np.float32)
    return Vectors(KEYS, inp, context=ctx, counts=np.array([5, 2, 5, 50]))


def test_cosine_finds_substitutes_context_finds_complements(planted):
    assert planted.most_similar("a", topn=1, scorer="cosine")[0][0] == "c"
    assert planted.most_similar("a", topn=1, scorer="context")[0][0] == "b"
    # the context score is the dot product of a's input and b's context vector
    assert planted.most_similar("a", topn=1, scorer="context")[0][1] == pytest.approx(1.0)


def test_min_support_keeps_rare_keys_out_of_lists(planted):
    assert "b" in [k for k, _ in planted.most_similar("a", topn=3, scorer="context", min_support=1)]
    assert "b" not in [k for k, _ in planted.most_similar("a", topn=3, scorer="context", min_support=3)]
    # its vector stays: b can still be a query
    assert planted.recommend(["b"], topn=1, scorer="cosine", min_support=3)


def test_recommend_excludes_the_query_skips_unknown_and_falls_back_to_popularity(planted):
    recs = planted.recommend(["a", "zzz"], topn=3, scorer="context")
    assert "a" not in [k for k, _ in recs] and len(recs) == 3
    fallback = planted.recommend(["zzz"], topn=2)
    assert [k for k, _ in fallback] == ["d", "a"]  # by count, ties to the lower row
    assert len(planted.recommend(["a"], topn=99)) == 3  # capped at the other keys


def test_recommend_rows_batches_agree(planted):
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 3, size=50)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(-1, 4, size=int(indptr[-1]))
    whole = recommend_rows(planted, indptr, items, 2, "context", batch_size=1000)
    small = recommend_rows(planted, indptr, items, 2, "context", batch_size=7)
    assert np.array_equal(whole.items, small.items) and np.allclose(whole.scores, small.scores)
    assert np.array_equal(whole.fallback, np.bincount(np.repeat(np.arange(50), lengths)[items >= 0], minlength=50) == 0)
    for q in range(50):  # never a query item
        assert not set(whole.items[q]) & set(items[indptr[q]:indptr[q + 1]].tolist()) - {-1}


def test_query_last_uses_only_the_last_known_items(planted):
    scorer = make_scorer(planted, "cosine")
    q, known = scorer.query_vectors(np.array([0, 3]), np.array([1, 0, -1]), query_last=1)
    assert known[0] and np.allclose(q[0], scorer.queries[0])   # 'a', the last known item
    q_all, _ = scorer.query_vectors(np.array([0, 3]), np.array([1, 0, -1]), query_last=0)
    assert np.allclose(q_all[0], scorer.queries[0] + scorer.queries[1])


def test_top_k_orders_and_breaks_ties_to_the_lower_index():
    idx, scores = top_k(np.array([[1.0, 3.0, 3.0, -np.inf, 2.0]]), 3)
    assert idx.tolist() == [[1, 2, 4]] and scores.tolist() == [[3.0, 3.0, 2.0]]


def test_context_and_counts_round_trip_and_old_versions_load(tmp_path, planted):
    save_vectors(planted, tmp_path / "v", {"scoring": {"scorer": "context", "min_support": 3}})
    back = load_vectors(tmp_path / "v")
    assert np.array_equal(back.context, planted.context) and np.array_equal(back.counts, planted.counts)
    assert back.scorer == "context" and back.min_support == 3
    assert read_manifest(tmp_path / "v")["tensors"] == ["context", "counts", "vectors"]
    save_vectors(Vectors(KEYS, planted.matrix), tmp_path / "old")  # a version without them
    old = load_vectors(tmp_path / "old")
    assert old.context is None and old.counts is None and old.scorer == "cosine"
    assert "vectors.safetensors" in read_manifest(tmp_path / "old")["files"]
    with pytest.raises(CatvecError, match="no context vectors"):
        old.most_similar("a", scorer="context")
    with pytest.raises(CatvecError, match="unknown scorer 'dot'"):
        make_scorer(planted, "dot")
    with pytest.raises(CatvecError, match="got one string 'ab'"):
        planted.recommend("ab")
    with pytest.raises(CatvecError, match="topn must be >= 1"):
        planted.recommend(["a"], topn=0)

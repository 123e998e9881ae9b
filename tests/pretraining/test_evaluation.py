"""Next-item metrics: ranks, seen-item exclusion, misses, the popularity baseline."""

import math

import numpy as np
import pytest

from catvec.pretraining.evaluation import NextItemTask, encode_task, next_item_metrics, popularity_metrics, summarize

KEYS = ["a", "b", "c", "d", "e"]


@pytest.fixture
def matrix():
    # a, b, c lie close together along x; d along y; e opposite of a.
    return np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.3], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)


def test_summarize_hits_and_ndcg():
    out = summarize(np.array([0, 1, 9, 10, 500]), k=10)
    assert out["hr"] == pytest.approx(3 / 5)
    assert out["ndcg"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5)
    assert out["users"] == 5


def test_rank_of_target_by_cosine(matrix):
    # query a: b is nearest (rank 0), c next (rank 1), d (rank 2)
    for target, rank in [("b", 0), ("c", 1), ("d", 2), ("e", 3)]:
        task = encode_task(KEYS, [["a"]], [target])
        got = next_item_metrics(matrix, task, k=rank + 1)
        assert got["hr"] == 1.0, target
        assert got["ndcg"] == pytest.approx(1 / math.log2(rank + 2))
        assert next_item_metrics(matrix, task, k=rank)["hr"] == 0.0 if rank else True


def test_seen_items_are_not_candidates(matrix):
    # without exclusion c ranks behind b; b was seen, so c moves to the top
    task = encode_task(KEYS, [["b", "a"]], ["c"])
    assert next_item_metrics(matrix, task, k=1)["hr"] == 1.0
    assert next_item_metrics(matrix, encode_task(KEYS, [["a"]], ["c"]), k=1)["hr"] == 0.0


def test_a_target_seen_before_stays_a_candidate(matrix):
    task = encode_task(KEYS, [["b", "a"]], ["b"])
    assert next_item_metrics(matrix, task, k=1)["hr"] == 1.0


def test_unknown_target_or_empty_query_is_a_miss(matrix):
    task = encode_task(KEYS, [["a"], ["zz"], ["a"]], ["zz", "b", "b"])
    assert next_item_metrics(matrix, task, k=5)["hr"] == pytest.approx(1 / 3)
    # popularity needs no query: only the unknown target misses
    assert popularity_metrics(np.ones(5), task, k=5)["hr"] == pytest.approx(2 / 3)


def _reference_ranks(matrix, histories, targets, query_last):
    """Plain loops: the definition the vectorised code must match."""
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    ranks = []
    for history, target in zip(histories, targets):
        known = [i for i in history if i >= 0][-query_last:]
        if target < 0 or not known:
            ranks.append(len(matrix))
            continue
        q = unit[known].mean(axis=0)
        scores = {i: float(unit[i] @ q) for i in range(len(matrix)) if i not in history or i == target}
        ranks.append(sum(1 for i, s in scores.items() if i != target and s >= scores[target]))
    return np.array(ranks)


@pytest.mark.parametrize("query_last", [1, 2, 3])
def test_matches_reference_loops(query_last):
    rng = np.random.default_rng(query_last)
    matrix = rng.normal(size=(40, 6))
    histories = [list(rng.integers(-1, 40, size=rng.integers(1, 7))) for _ in range(50)]
    targets = list(rng.integers(-1, 40, size=50))
    indptr = np.concatenate([[0], np.cumsum([len(h) for h in histories])])
    task = NextItemTask(indptr, np.concatenate(histories), targets)
    expected = summarize(_reference_ranks(matrix, histories, targets, query_last), k=10)
    got = next_item_metrics(matrix, task, k=10, query_last=query_last)
    assert got["hr"] == pytest.approx(expected["hr"])
    assert got["ndcg"] == pytest.approx(expected["ndcg"], rel=1e-5)


def test_popularity_ranks_by_count_then_row():
    counts = np.array([5, 9, 9, 1, 0])
    task = encode_task(KEYS, [["d"], ["d"], ["b"]], ["b", "c", "a"])
    # order b(9, row 1), c(9, row 2), a(5), d(1), e(0); user 3 has seen b, so a ranks 2nd
    ranks_k1 = popularity_metrics(counts, task, k=1)
    assert ranks_k1["hr"] == pytest.approx(1 / 3)
    assert popularity_metrics(counts, task, k=2)["hr"] == pytest.approx(1.0)


def test_batches_do_not_change_results():
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(60, 8)).astype(np.float32)
    lengths = rng.integers(1, 6, size=37)
    task = NextItemTask(np.concatenate([[0], np.cumsum(lengths)]), rng.integers(-1, 60, size=lengths.sum()),
                        rng.integers(-1, 60, size=37))
    whole = next_item_metrics(matrix, task, k=10, query_last=2, batch_size=1000)
    assert next_item_metrics(matrix, task, k=10, query_last=2, batch_size=4) == whole
    assert popularity_metrics(np.arange(60), task, batch_size=3) == popularity_metrics(np.arange(60), task)

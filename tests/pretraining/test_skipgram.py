"""The loss probe's sample of training pairs: every (token, neighbour within the window) of
the corpus' first lines, in file order, as a plain loop over the lines would list them."""

import numpy as np
import pytest

from catvec.pretraining import skipgram
from catvec.pretraining.skipgram import _first_lines, _window_pairs


def loop_pairs(lines, key_to_index, window):
    """The reference: a loop per line, per token, per neighbour."""
    centers, contexts = [], []
    for line in lines:
        idx = [key_to_index[t] for t in line.split() if t in key_to_index]
        for i in range(len(idx)):
            for j in range(max(0, i - window), min(len(idx), i + window + 1)):
                if j != i:
                    centers.append(idx[i])
                    contexts.append(idx[j])
    return centers, contexts


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(3)
    lengths = [1, 2, 7, 30, 3, 1, 12, 5]                       # one-token lines have no pairs
    lines = [" ".join(str(t) for t in rng.integers(0, 40, size=n)) for n in lengths]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # Tokens 35..39 are out of the vocabulary (as after min_count); the rest map to shuffled indices.
    index = rng.permutation(35)
    return path, lines, {str(t): int(index[t]) for t in range(35)}


@pytest.mark.parametrize("window", [1, 2, 5, 40])
def test_pairs_match_a_loop_over_the_lines(corpus, window):
    path, lines, key_to_index = corpus
    centers, contexts = _window_pairs(_first_lines(path, key_to_index, window), window)
    expected = loop_pairs(lines, key_to_index, window)
    assert len(expected[0]) > 0
    assert centers.tolist() == expected[0] and contexts.tolist() == expected[1]


def test_reading_stops_once_enough_pairs(corpus, monkeypatch):
    path, lines, key_to_index = corpus
    monkeypatch.setattr(skipgram, "LOSS_SAMPLE_PAIRS", 1)       # 20 pairs are enough
    read = _first_lines(path, key_to_index, 2)
    n_pairs = [len(loop_pairs(lines[:k], key_to_index, 2)[0]) for k in range(1, len(lines) + 1)]
    first_enough = next(k for k, n in enumerate(n_pairs, 1) if n >= 20)
    assert len(read) == first_enough < len(lines)


def test_no_pairs_from_an_empty_or_single_token_corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("3\n4\n", encoding="utf-8")
    centers, contexts = _window_pairs(_first_lines(path, {"3": 0, "4": 1}, 5), 5)
    assert len(centers) == len(contexts) == 0
    assert len(_window_pairs([], 5)[0]) == 0

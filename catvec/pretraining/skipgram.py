"""Skip-gram training with gensim in corpus_file mode: the only gensim import.

`train_vectors(corpus, params)` returns plain `Vectors` (input vectors, context vectors =
gensim's `syn1neg`, and each key's training count) plus training stats; the settings are
the skip-gram group of the config (`SkipGram`: dim, window, epochs, negative, ns_exponent,
sample, alpha, min_alpha, max_final_vocab, workers, seed, exact), read here and nowhere else.

Loss. gensim's running loss is a float32 tally; past ~1.7e7 it stops absorbing
per-pair increments, and in corpus_file mode with several workers only the last worker
to finish writes it back. So catvec reports two numbers per epoch:
- `loss`: the mean skip-gram negative-sampling loss on a fixed sample of training pairs
  (same pairs and negatives every epoch), computed in float64 from the current weights.
  It does not touch the model, so exact mode stays exact;
- `gensim_loss`: gensim's own tally, reset at each epoch start (kept for reference).
"""

from __future__ import annotations

import logging
import time
import zlib

import numpy as np

from catvec.base.faults import fault_point
from catvec.base.vectors import Vectors
from catvec.pretraining.config import SkipGram

log = logging.getLogger(__name__)

LOSS_SAMPLE_PAIRS = 20000


def _stable_hash(text: str) -> int:
    """A hash that does not depend on PYTHONHASHSEED (gensim's default is `hash`)."""
    return zlib.crc32(text.encode("utf-8"))


def train_vectors(corpus, params: SkipGram, on_epoch=None, init: Vectors | None = None,
                  min_count: int = 1) -> tuple[Vectors, dict]:
    """Train skip-gram vectors on a `catvec.pretraining.corpus.Corpus` with the settings
    `params` (a SkipGram group). `min_count` is the corpus's own rule (SequenceRules): a key
    the corpus's short-sequence filter left under it is dropped here too.

    on_epoch(epoch, n_epochs, info) is called after each epoch with
    info = {"loss": float, "gensim_loss": float, "seconds": float}.

    init (a warm start): keys it holds start from its input and context vectors instead of
    gensim's random init; the others start as usual.

    Example: vectors, stats = train_vectors(corpus, SkipGram(dim=32, epochs=5, window=5))
    """
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    window = params.window
    shrink = True
    workers = params.effective_workers
    if corpus.basket:
        # Unordered sets: every item in a basket is context for every other one.
        window = max(window, corpus.longest)
        shrink = False
    model = Word2Vec(
        sg=1, vector_size=params.dim, window=window, negative=params.negative, hs=0,
        ns_exponent=params.ns_exponent, sample=params.sample, alpha=params.alpha,
        min_alpha=params.min_alpha, min_count=min_count,
        max_final_vocab=params.max_final_vocab or None, workers=workers,
        seed=params.seed, hashfxn=_stable_hash, shrink_windows=shrink, compute_loss=True,
        sorted_vocab=1,
    )
    started = time.perf_counter()
    model.build_vocab(corpus_file=str(corpus.path))
    if len(model.wv) == 0:
        from catvec.base.errors import CatvecError

        raise CatvecError("the vocabulary is empty after min_count / max_final_vocab; lower them")
    vocab_seconds = time.perf_counter() - started
    warm_keys = _warm_start(model, corpus.keys, init) if init is not None else 0
    probe = _LossProbe(corpus.path, model, window, params.negative, params.ns_exponent, params.seed)

    history: list[dict] = []

    class _Epochs(CallbackAny2Vec):
        def on_epoch_begin(self, m):
            m.running_training_loss = 0.0
            self.t0 = time.perf_counter()

        def on_epoch_end(self, m):
            info = {"epoch": len(history) + 1, "loss": probe.loss(),
                    "gensim_loss": float(m.get_latest_training_loss()),
                    "seconds": round(time.perf_counter() - self.t0, 4)}
            history.append(info)
            fault_point("training-epoch")
            log.info("epoch %d/%d loss %.4f", info["epoch"], params.epochs, info["loss"])
            if on_epoch is not None:
                on_epoch(info["epoch"], params.epochs, info)

    t_train = time.perf_counter()
    model.train(corpus_file=str(corpus.path), total_examples=model.corpus_count,
                total_words=model.corpus_total_words, epochs=params.epochs, callbacks=[_Epochs()],
                compute_loss=True)
    train_seconds = time.perf_counter() - t_train

    token_keys = corpus.keys
    keys = [token_keys[int(tok)] for tok in model.wv.index_to_key]
    matrix = np.ascontiguousarray(model.wv.vectors, dtype=np.float32)
    # The output weights of negative sampling: row i scores key i as a context of a query.
    context = np.ascontiguousarray(model.syn1neg, dtype=np.float32)
    counts = np.asarray(model.wv.expandos["count"], dtype=np.int64)
    stats = {
        "vocab_size": len(keys),
        "window_used": window,
        "shrink_windows": shrink,
        "workers": workers,
        "words_per_second": round(model.corpus_total_words * params.epochs / max(train_seconds, 1e-9)),
        "vocab_seconds": round(vocab_seconds, 4),
        "train_seconds": round(train_seconds, 4),
        "epochs": history,
        "loss_pairs": probe.n_pairs,
    }
    if init is not None:
        stats["warm_keys"] = warm_keys
    return Vectors(keys=keys, matrix=matrix, context=context, counts=counts), stats


def _warm_start(model, token_keys: list[str], init: Vectors) -> int:
    """Copy init's rows into the model for the keys both hold; returns how many."""
    index = init.key_to_index
    rows, source = [], []
    for i, tok in enumerate(model.wv.index_to_key):
        j = index.get(token_keys[int(tok)])
        if j is not None:
            rows.append(i)
            source.append(j)
    if rows:
        model.wv.vectors[rows] = init.matrix[source]
        if init.context is not None:
            model.syn1neg[rows] = init.context[source]
    log.info("warm start: %d of %d keys from the parent", len(rows), len(model.wv))
    return len(rows)


class _LossProbe:
    """Mean SGNS loss on a fixed sample of (center, context, negatives) from the corpus.

    The pairs are every (token, neighbour within the window) of the first lines of the
    corpus, up to about 20 x LOSS_SAMPLE_PAIRS, in file order; LOSS_SAMPLE_PAIRS of them
    are drawn once. Built with numpy (one pass per window offset), not a loop per pair."""

    def __init__(self, path, model, window, negative, ns_exponent, seed):
        self.model = model
        rng = np.random.default_rng(seed + 7919)
        centers, contexts = _window_pairs(_first_lines(path, model.wv.key_to_index, window), window)
        if len(centers) > LOSS_SAMPLE_PAIRS:
            pick = rng.choice(len(centers), LOSS_SAMPLE_PAIRS, replace=False)
            centers, contexts = centers[pick], contexts[pick]
        counts = np.asarray(model.wv.expandos["count"], dtype=np.float64)
        weights = counts ** ns_exponent
        weights /= weights.sum()
        self.centers, self.contexts = centers, contexts
        self.negatives = rng.choice(len(counts), size=(len(centers), max(negative, 1)), p=weights)
        self.n_pairs = int(len(centers))

    def loss(self) -> float:
        if self.n_pairs == 0:
            return float("nan")
        w_in, w_out = self.model.wv.vectors, self.model.syn1neg
        # Dot products of float32 rows (as gensim computes them), the loss in float64.
        c = w_in[self.centers]                                             # (pairs, dim)
        pos = np.einsum("pd,pd->p", c, w_out[self.contexts]).astype(np.float64)        # (pairs,)
        neg = np.matmul(w_out[self.negatives], c[:, :, None])[..., 0].astype(np.float64)  # (pairs, k)
        loss = np.logaddexp(0.0, -pos) + np.logaddexp(0.0, neg).sum(axis=1)
        return float(loss.mean())


def _first_lines(path, key_to_index, window) -> list[np.ndarray]:
    """The model indices of the tokens of the corpus' first lines (tokens outside the
    vocabulary left out), enough lines for 20 x LOSS_SAMPLE_PAIRS window pairs."""
    lookup = np.full(max((int(k) for k in key_to_index), default=-1) + 1, -1, dtype=np.int64)
    for key, index in key_to_index.items():
        lookup[int(key)] = index
    lines, n_pairs = [], 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            tok = np.array(line.split(), dtype=np.int64)
            idx = lookup[np.minimum(tok, len(lookup) - 1)]
            idx = idx[(idx >= 0) & (tok < len(lookup))]
            lines.append(idx)
            # pairs of a line of n tokens: each token with its neighbours up to `window` away
            m = min(len(idx), window + 1)
            n_pairs += m * (m - 1) + 2 * window * max(0, len(idx) - window - 1)
            if n_pairs >= 20 * LOSS_SAMPLE_PAIRS:
                break
    return lines


def _window_pairs(lines: list[np.ndarray], window: int) -> tuple[np.ndarray, np.ndarray]:
    """(centers, contexts): every token with each neighbour within `window` in its line,
    ordered by line, then center position, then context position."""
    if not lines:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    tokens = np.concatenate(lines)
    line_of = np.repeat(np.arange(len(lines)), [len(x) for x in lines])
    longest = max(len(x) for x in lines)
    at, near = [], []
    for d in range(1, min(window, longest - 1) + 1):
        p = np.flatnonzero(line_of[:-d] == line_of[d:])            # positions p with p + d in the same line
        at += [p, p + d]
        near += [p + d, p]
    if not at:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    at, near = np.concatenate(at), np.concatenate(near)
    order = np.lexsort((near, at))
    return tokens[at[order]], tokens[near[order]]

"""One benchmark task per call, in a fresh process: prints JSON {"seconds", "peak_rss_mb", ...}.

run.py starts each task with `python benchmarks/tasks.py TASK ARGS...`, so each peak RSS
belongs to that task alone. Timed sections exclude interpreter start and imports.

    .venv/bin/python benchmarks/tasks.py extract-polars benchmarks/data/events_5000000.csv /tmp/c.txt
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def extract_catvec(events: str, out: str) -> dict:
    from catvec.pretraining.corpus import build_corpus
    from catvec.pretraining.events import read_events

    t = time.perf_counter()
    corpus = build_corpus(read_events(events), out)
    return {"seconds": time.perf_counter() - t, "lines": corpus.stats["lines"], "tokens": corpus.stats["tokens"]}


def extract_polars(events: str, out: str) -> dict:
    """The hand-written baseline: read, sort by user and time, one line of items per user."""
    import polars as pl

    t = time.perf_counter()
    frame = pl.read_csv(events, schema_overrides={"user_id": pl.Utf8, "item_id": pl.Utf8, "timestamp": pl.Int64})
    lines = (frame.sort("user_id", "timestamp", maintain_order=True)
             .group_by("user_id", maintain_order=True).agg(pl.col("item_id").str.join(" ")))
    lines.select("item_id").write_csv(out, include_header=False, quote_style="never")
    return {"seconds": time.perf_counter() - t, "lines": lines.height}


def extract_pandas(events: str, out: str) -> dict:
    """The naive baseline: pandas sort + groupby().apply(list), written line by line."""
    import pandas as pd

    t = time.perf_counter()
    frame = pd.read_csv(events, dtype={"user_id": str, "item_id": str})
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable")
    sequences = frame.groupby("user_id", sort=False)["item_id"].apply(list)
    with open(out, "w", encoding="utf-8") as fh:
        for items in sequences:
            fh.write(" ".join(items) + "\n")
    return {"seconds": time.perf_counter() - t, "lines": len(sequences)}


def pretrain_catvec(events: str, out: str, epochs: str, workers: str, refresh: str = "1") -> dict:
    """catvec pretrain end to end (read, extract, train, map, write) as the CLI runs it."""
    from catvec.pretraining.config import PretrainConfig
    from catvec.pretraining.pipeline import pretrain

    # the fixed fallbacks (no tuning): one training, comparable with bare gensim below; the second
    # (cached) run into the same OUT has a parent, so alignment and the gate are off: they would
    # add the parent's seed-noise training to what is meant to time the corpus cache
    cfg = PretrainConfig(events=events, out=out, epochs=int(epochs), workers=int(workers), refresh=refresh == "1",
                         tune=False, align=False, gate=False)
    t = time.perf_counter()
    result = pretrain(cfg)
    corpus = next(Path(out, ".cache").glob("corpus-*")) / "corpus.txt"
    return {"seconds": time.perf_counter() - t, "corpus": str(corpus),
            "train_seconds": result.manifest["timings"]["train_seconds"],
            "words_per_second": result.manifest["training"]["words_per_second"]}


def gensim_bare(corpus: str, epochs: str, workers: str) -> dict:
    """gensim Word2Vec on the same corpus file with the same parameters as catvec without tuning."""
    from gensim.models import Word2Vec

    from catvec.pretraining.config import PretrainConfig
    from catvec.pretraining.autotune import FALLBACK

    d = PretrainConfig()
    t = time.perf_counter()
    model = Word2Vec(corpus_file=corpus, sg=1, vector_size=d.dim, window=FALLBACK["window"], negative=d.negative, hs=0,
                     ns_exponent=FALLBACK["ns_exponent"], sample=FALLBACK["sample"], alpha=d.alpha, min_alpha=d.min_alpha,
                     min_count=d.min_count, workers=int(workers), epochs=int(epochs), seed=d.seed)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "words_per_second": model.corpus_total_words * int(epochs) / seconds}


def recommend_catvec(n_items: str, n_queries: str) -> dict:
    """catvec's batched recommend: n_queries histories of 5 items over n_items keys, top 10."""
    from catvec.base.scoring import recommend_rows

    vectors, indptr, items = _recommend_inputs(int(n_items), int(n_queries))
    t = time.perf_counter()
    recommend_rows(vectors, indptr, items, 10, "context")
    return {"seconds": time.perf_counter() - t}


def recommend_loop(n_items: str, n_queries: str) -> dict:
    """The baseline: one numpy product and argpartition per query, on 1,000 queries,
    scaled to n_queries."""
    vectors, indptr, items = _recommend_inputs(int(n_items), int(n_queries))
    n_run = min(1000, int(n_queries))
    t = time.perf_counter()
    for q in range(n_run):
        query = items[indptr[q]:indptr[q + 1]]
        scores = vectors.matrix[query].sum(axis=0) @ vectors.context.T
        scores[query] = -np.inf
        top = np.argpartition(-scores, 10)[:10]
        top[np.argsort(-scores[top])]
    return {"seconds": (time.perf_counter() - t) * int(n_queries) / n_run}


def _recommend_inputs(n: int, n_queries: int):
    from catvec.base.vectors import Vectors

    rng = np.random.default_rng(0)
    vectors = Vectors([str(i) for i in range(n)], rng.standard_normal((n, 64), dtype=np.float32),
                      context=rng.standard_normal((n, 64), dtype=np.float32), counts=rng.integers(1, 1000, n))
    return vectors, np.arange(0, 5 * n_queries + 1, 5), rng.integers(0, n, 5 * n_queries)


def align_catvec(n_keys: str) -> dict:
    from catvec.finetuning.align import align

    vectors, vocab = _align_inputs(int(n_keys))
    t = time.perf_counter()
    matrix, report = align(vectors, vocab, "normal")
    return {"seconds": time.perf_counter() - t, "hits": report.hits}


def align_dict_loop(n_keys: str) -> dict:
    """The baseline: a Python loop over the vocab looking each key up in a dict of vectors."""
    import numpy as np

    vectors, vocab = _align_inputs(int(n_keys))
    t = time.perf_counter()
    by_key = dict(zip(vectors.keys, vectors.matrix))
    matrix = np.zeros((len(vocab.index_to_key), vectors.dim), dtype=np.float32)
    rng = np.random.default_rng(0)
    mean, std = vectors.matrix.mean(axis=0), vectors.matrix.std(axis=0)
    for i, key in enumerate(vocab.index_to_key):
        vec = by_key.get(key) if i else None
        matrix[i] = vec if vec is not None else rng.normal(mean, std)
    return {"seconds": time.perf_counter() - t}


def _align_inputs(n: int):
    """n pretrained keys; a vocab of n entries sharing 90% of them, in another order."""
    import numpy as np

    from catvec.base.vectors import Vectors
    from catvec.finetuning.vocab import UNK, Vocab

    rng = np.random.default_rng(0)
    vectors = Vectors([f"item{i}" for i in range(n)], rng.normal(size=(n, 32)).astype(np.float32))
    shared = rng.permutation(n)[: int(n * 0.9)]
    keys = [f"item{i}" for i in shared] + [f"new{i}" for i in range(n - len(shared))]
    return vectors, Vocab([UNK, *keys])


def finetune_steps(n_rows: str, sparse: str, steps: str = "60") -> dict:
    """Training steps/s of an embedding table (n_rows x 32) + MLP head, AdamW or SparseAdam."""
    import numpy as np
    import torch

    from catvec.finetuning.embedding import PretrainedEmbedding, build_optimizers

    torch.manual_seed(0)
    torch.set_num_threads(2)
    n, batch, dim = int(n_rows), 512, 32
    emb = PretrainedEmbedding(np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32),
                              mode="finetune", sparse=sparse == "1")
    model = torch.nn.Sequential()
    model.emb = emb
    head = torch.nn.Sequential(torch.nn.Linear(dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    model.head = head
    optimizers = build_optimizers(model, 1e-2, 1e-3, 1e-4, sparse=sparse == "1")
    index = torch.randint(0, n, (int(steps) + 5, batch))
    target = torch.randn(int(steps) + 5, batch, 1)

    def step(i):
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(head(emb(index[i])), target[i])   # (batch, 1)
        loss.backward()
        for opt in optimizers:
            opt.step()

    for i in range(5):  # warm-up: optimizer state allocation
        step(i)
    t = time.perf_counter()
    for i in range(5, int(steps) + 5):
        step(i)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "steps_per_second": int(steps) / seconds}


TASKS = {"extract-catvec": extract_catvec, "extract-polars": extract_polars, "extract-pandas": extract_pandas,
         "pretrain-catvec": pretrain_catvec, "gensim-bare": gensim_bare, "align-catvec": align_catvec,
         "align-dict-loop": align_dict_loop, "finetune-steps": finetune_steps,
         "recommend-catvec": recommend_catvec, "recommend-loop": recommend_loop}


def main(argv: list[str]) -> int:
    result = TASKS[argv[0]](*argv[1:])
    # ru_maxrss is in KiB on Linux (bytes on macOS)
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

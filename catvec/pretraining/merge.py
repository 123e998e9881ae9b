"""Corpus shards -> the one-file corpus: the global vocabulary from the shards' item
counts (most frequent first, ties by key, the one-file rule), each shard's token ids
rewritten into global ones, the shards appended in key order, their stats added up.
With min_count > 1 the items rare in the whole input come from every shard's counts
(`rare_items`) before any shard drops one.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from catvec.base.errors import CatvecError
from catvec.pretraining.config import EventOptions, SequenceRules

log = logging.getLogger(__name__)


def rare_items(results: list[dict], min_count: int) -> tuple:
    import polars as pl

    frames = [pl.DataFrame({"item": r["items"], "len": r["counts"]}, schema={"item": pl.Utf8, "len": pl.Int64})
              for r in results]
    totals = pl.concat(frames).group_by("item").agg(pl.col("len").sum())
    return tuple(sorted(totals.filter(pl.col("len") < min_count)["item"].to_list()))


def merge_shards(results: list[dict], path: Path, options: EventOptions, rules: SequenceRules, source: str,
                 rare) -> "object":
    """Shard results (in key order) -> one Corpus: global vocabulary, ids rewritten, stats added up."""
    import polars as pl

    from catvec.pretraining.corpus import Corpus

    results = sorted(results, key=lambda r: r["index"])
    locals_ = [pl.DataFrame({"item": r["keys"], "len": r["counts"]}, schema={"item": pl.Utf8, "len": pl.Int64})
               for r in results]
    vocab = (pl.concat(locals_).group_by("item").agg(pl.col("len").sum())
             .sort(["len", "item"], descending=[True, False])
             .with_columns(tok=pl.int_range(pl.len(), dtype=pl.UInt32)))
    stats = merge_stats([r["stats"] for r in results], [r["length_counts"] for r in results], vocab.height)
    if rare:
        stats["dropped"]["rare_items"] = len(rare)
    if stats["events_read"] == 0:
        window = " in the since / until range" if options.since or options.until else ""
        raise CatvecError(f"{source}: no events (the input has no rows{window})")
    if stats["tokens"] == 0:
        raise CatvecError(
            f"{source}: every event was dropped by the filters (min_count={rules.min_count}, "
            f"min_sequence_length={rules.min_sequence_length}{', session_gap' if rules.session_gap else ''}); "
            "lower them or check the user / time columns")
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as out:
        for r, local in zip(results, locals_):
            mapping = local.join(vocab.select("item", "tok"), on="item", how="left", maintain_order="left")["tok"]
            append_remapped(Path(r["path"]), mapping, out)
    os.replace(tmp, path)
    heldout = None
    if rules.holdout_items:
        parts = [pl.read_parquet(r["heldout"]) for r in results if r["heldout"]]
        heldout = pl.concat(parts) if parts else pl.DataFrame(schema={"user": pl.Utf8, "item": pl.Utf8, "role": pl.Utf8})
    log.info("corpus: %d sequences, %d tokens, %d items (%d shards)", stats["lines"], stats["tokens"],
             stats["vocab_size"], len(results))
    return Corpus(path=path, keys=vocab["item"].to_list(), stats=stats, basket=options.basket,
                  heldout=heldout, counts=vocab["len"].to_list())


def append_remapped(shard: Path, mapping, out) -> None:
    """Append a corpus shard to `out` with local token i written as mapping[i]."""
    import polars as pl

    if shard.stat().st_size == 0:
        return
    if mapping.to_list() == list(range(len(mapping))):
        with open(shard, "rb") as fh:
            shutil.copyfileobj(fh, out, 1 << 20)
        return
    lines = pl.read_csv(shard, has_header=False, new_columns=["text"], separator="\x1f", quote_char=None,
                        schema_overrides={"text": pl.Utf8})
    table = mapping.cast(pl.UInt32).to_numpy()
    tokens = lines.with_row_index("line").select("line", tok=pl.col("text").str.split(" ")).explode("tok")
    tokens = tokens.with_columns(tok=pl.Series(table[tokens["tok"].cast(pl.UInt32).to_numpy()]))
    lines = tokens.group_by("line", maintain_order=True).agg(pl.col("tok").cast(pl.Utf8).str.join(" "))
    lines.select("tok").write_csv(out, include_header=False, quote_style="never")


def merge_stats(parts: list[dict], length_counts: list, vocab_size: int) -> dict:
    """The stats of the one-file corpus from the shards' (users are disjoint across shards;
    in basket mode a user whose baskets fall in two shards counts twice)."""
    order = ["repeats_collapsed", "rare_item_events", "rare_items", "short_sequence_events", "short_sequences"]
    dropped: dict = {}
    for p in parts:
        for k, v in p["dropped"].items():
            dropped[k] = dropped.get(k, 0) + v
    dropped = dict(sorted(dropped.items(), key=lambda kv: (kv[0] in order, order.index(kv[0]) if kv[0] in order else 0)))
    total = lambda name: sum(p.get(name, 0) for p in parts)  # noqa: E731
    stats = {"events_read": total("events_read"), "dropped": dropped}
    held = [p["heldout"] for p in parts if "heldout" in p]
    if held:
        stats["heldout"] = {k: sum(h.get(k, 0) for h in held) for k in held[0]}
    histogram: dict = {}
    for counts in length_counts:
        for n, c in counts:
            histogram[n] = histogram.get(n, 0) + c
    stats.update({"users": total("users"), "sequences": total("sequences"), "lines": total("lines"),
                  "sequences_split": total("sequences_split"), "tokens": total("tokens"), "vocab_size": vocab_size,
                  "lengths": length_stats(histogram)})
    stats["events_dropped"] = stats["events_read"] - stats["tokens"]
    return stats


def length_stats(histogram: dict) -> dict:
    """min / p50 / p90 / p99 / max / mean of line lengths from {length: lines} (polars' 'nearest')."""
    if not histogram:
        return {"min": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0, "mean": 0.0}
    values = sorted(histogram.items())
    n = sum(c for _, c in values)

    def nearest(q: float) -> float:
        index = int(q * (n - 1) + 0.5)
        seen = 0
        for value, count in values:
            seen += count
            if seen > index:
                return float(value)
        return float(values[-1][0])  # pragma: no cover

    mean = sum(v * c for v, c in values) / n
    return {"min": int(values[0][0]), "p50": nearest(0.5), "p90": nearest(0.9), "p99": nearest(0.99),
            "max": int(values[-1][0]), "mean": round(float(mean), 3)}

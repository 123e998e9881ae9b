"""Events -> corpus: ordering, sessions, baskets, filters, token encoding, the corpus file.

The corpus file holds one sequence per line as integer token ids separated by spaces;
`Corpus.keys[id]` is the key of token `id`. Writing ids instead of keys is what lets keys
carry spaces, tabs or newlines: gensim only ever sees ids.

Rules, applied in this order (all vectorised in polars, no Python loop per user):

1. order: each user's events by time, ties by input position (stable, deterministic);
   with a session column, by (user, session) first; basket mode groups by basket id;
2. sessions: a new sequence starts after an inactivity gap longer than session_gap;
3. collapse_repeats: an event with the same item as the one before it in its sequence
   is dropped (A A B A -> A B A);
4. min_count: items seen in fewer events than min_count are dropped;
5. min_sequence_length: shorter sequences are dropped;
6. max_sequence_length: longer sequences are split into consecutive chunks, never
   truncated (gensim silently truncates at 10,000 tokens).

Holdout (`holdout=1` or `2`, after rule 3, before rule 4): each user's last event (and
the one before it, the validation item, with 2) is kept out of the corpus and returned
as `Corpus.heldout`, for users with at least holdout + 2 events. In basket mode one item
of a hashed 10% (test) and another 10% (valid) of the baskets is kept out instead
(`mark_basket_holdout`).

Token ids follow frequency (most frequent first, ties by key), so the file is the same
for the same events whatever their input order within a time tie.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from catvec.base.errors import CatvecError
from catvec.pretraining.config import SequenceRules

log = logging.getLogger(__name__)


@dataclass
class Corpus:
    path: Path
    keys: list[str]
    stats: dict = field(default_factory=dict)
    basket: bool = False
    heldout: object = None  # polars DataFrame user, item, role ('test' | 'valid'), or None
    counts: list[int] | None = None  # tokens of each key in the file, in keys order
    length_counts: list | None = None  # [(line length, lines)], ascending: shards merge their stats from it

    @property
    def longest(self) -> int:
        return int(self.stats["lengths"]["max"])


def build_corpus(events, path, rules: SequenceRules = SequenceRules(), *, rare_items=None,
                 allow_empty: bool = False) -> Corpus:
    """EventsTable -> Corpus written at `path`, by the sequence rules `rules`.

    A shard of a larger input passes `rare_items` (the items under min_count in the whole
    input, from `count_items` over every shard) instead of counting its own, and
    `allow_empty` (a shard may lose every event to the filters).
    Example: build_corpus(read_events("data/events.csv"), "corpus.txt", SequenceRules(session_gap="30m"))
    """
    import polars as pl

    frame, basket, min_count = events.frame, events.basket, rules.min_count
    stats = {"events_read": events.stats.get("events_read", frame.height),
             "dropped": dict(events.stats.get("dropped", {}))}
    seq_frame, heldout = _sequences(events, rules)
    if rules.collapse_repeats and not basket:
        stats["dropped"]["repeats_collapsed"] = frame.height - seq_frame.height - (heldout.height if heldout is not None else 0)
    if heldout is not None:
        stats["heldout"] = {"events": heldout.height, "users": int(heldout["user"].n_unique())}
        if basket:
            stats["heldout"]["baskets"] = stats["heldout"].pop("users")

    if rare_items is not None or min_count > 1:
        if rare_items is None:
            counts = seq_frame.group_by("item").len()
            rare = counts.filter(pl.col("len") < min_count)
        else:
            rare = (seq_frame.filter(pl.col("item").is_in(pl.Series(list(rare_items), dtype=pl.Utf8).implode()))
                    .group_by("item").len())
        if rare.height:
            seq_frame = seq_frame.join(rare.select("item"), on="item", how="anti", maintain_order="left")
            stats["dropped"]["rare_item_events"] = int(rare["len"].sum())
            stats["dropped"]["rare_items"] = rare.height
    return _write_corpus(seq_frame, heldout, stats, path, rules, basket=basket, source=events.source,
                         allow_empty=allow_empty)


def count_items(events, rules: SequenceRules = SequenceRules()):
    """Events of each item after rules 1-3 and the holdout: what min_count is judged on
    (a polars frame item, len). Shards add theirs up before any of them drops an item."""
    seq_frame, _ = _sequences(events, rules)
    return seq_frame.group_by("item").len()


def _sequences(events, rules: SequenceRules):
    """Rules 1-3 and the holdout -> (frame user, item, seq; held-out frame or None)."""
    import polars as pl

    lf = sequence_frame(events, rules)
    heldout, holdout = None, rules.holdout_items
    if holdout and events.basket:
        marked = mark_basket_holdout(lf, rules.basket_holdout_share).collect()
        heldout = marked.filter(pl.col("_held")).select(user=pl.col("group"), item="item", role="role")
        seq_frame = marked.filter(~pl.col("_held")).select("user", "item", "seq")
    elif holdout:
        marked = lf.with_columns(_held=held_out_mask(holdout)).collect()
        held = marked.filter(pl.col("_held"))
        last = pl.int_range(pl.len()).over("user") == pl.len().over("user") - 1
        heldout = held.select("user", "item", role=pl.when(last).then(pl.lit("test")).otherwise(pl.lit("valid")))
        seq_frame = marked.filter(~pl.col("_held")).select("user", "item", "seq")
    else:
        seq_frame = lf.select("user", "item", "seq").collect()
    return seq_frame, heldout


def _write_corpus(seq_frame, heldout, stats, path, rules: SequenceRules, *, basket, source, allow_empty) -> Corpus:
    """Rules 5-6 (short sequences, long ones split), token ids by frequency, the file."""
    import polars as pl

    min_sequence_length, max_sequence_length = rules.min_sequence_length, rules.max_sequence_length

    # Rows of a sequence are contiguous (seq ascending), so run lengths are its lengths.
    lengths = seq_frame["seq"].rle().struct.unnest().rename({"value": "seq"})
    short = lengths.filter(pl.col("len") < min_sequence_length)
    if short.height:
        seq_frame = seq_frame.filter(~pl.col("seq").is_in(short["seq"].implode()))
        stats["dropped"]["short_sequence_events"] = int(short["len"].sum())
        stats["dropped"]["short_sequences"] = short.height
    if seq_frame.height == 0 and not allow_empty:
        raise CatvecError(
            f"{source}: every event was dropped by the filters (min_count={rules.min_count}, "
            f"min_sequence_length={min_sequence_length}{', session_gap' if rules.session_gap else ''}); "
            "lower them or check the user / time columns"
        )

    # Split long sequences into chunks of at most max_sequence_length tokens (a window
    # function over every row: only worth it when some sequence is that long).
    if int(lengths["len"].max() or 0) > max_sequence_length:
        pos = pl.int_range(pl.len()).over("seq")
        seq_frame = seq_frame.with_columns(chunk=(pos // max_sequence_length))
        n_split = int(seq_frame.filter(pl.col("chunk") == 1)["seq"].n_unique())
        seq_frame = seq_frame.with_columns(
            line=((pl.col("seq") != pl.col("seq").shift(1)) | (pl.col("chunk") != pl.col("chunk").shift(1))).fill_null(True).cum_sum()
        )
    else:
        n_split = 0
        seq_frame = seq_frame.with_columns(line=pl.col("seq"))

    vocab = (seq_frame.group_by("item").len()
             .sort(["len", "item"], descending=[True, False])
             .with_columns(tok=pl.int_range(pl.len(), dtype=pl.UInt32)))
    seq_frame = seq_frame.join(vocab.select("item", "tok"), on="item", how="left", maintain_order="left")
    lines = (seq_frame.group_by("line", maintain_order=True)
             .agg(pl.col("tok").cast(pl.Utf8).str.join(" ").alias("text"),
                  pl.len().alias("n")))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    lines.select("text").write_csv(tmp, include_header=False, quote_style="never")
    os.replace(tmp, path)

    n = lines["n"]
    if not lines.height:  # an empty shard
        n = pl.Series([0])
    stats.update({
        "users": _count_users(seq_frame["user"], basket),
        "sequences": lengths.height - short.height,
        "lines": lines.height,
        "sequences_split": n_split,
        "tokens": seq_frame.height,
        "vocab_size": vocab.height,
        "lengths": {
            "min": int(n.min()), "p50": float(n.quantile(0.5, "nearest")),
            "p90": float(n.quantile(0.9, "nearest")), "p99": float(n.quantile(0.99, "nearest")),
            "max": int(n.max()), "mean": round(float(n.mean()), 3),
        },
    })
    stats["events_dropped"] = stats["events_read"] - stats["tokens"]
    log.info("corpus: %d sequences, %d tokens, %d items", stats["lines"], stats["tokens"], stats["vocab_size"])
    return Corpus(path=path, keys=vocab["item"].to_list(), stats=stats, basket=basket, heldout=heldout,
                  counts=vocab["len"].to_list(), length_counts=lines.group_by("n").len().sort("n").rows())


def _count_users(users, basket: bool) -> int:
    if users.null_count() == len(users):
        return 0
    if basket:  # baskets are ordered by basket id: a user's rows are scattered
        return int(users.n_unique())
    return int(users.rle_id().max()) + 1  # each user's rows are one contiguous run


def sequence_frame(events, rules: SequenceRules = SequenceRules()):
    """Rules 1-3 (order, sessions, collapse) as a polars LazyFrame of user, item, t, seq
    in sequence order. build_corpus and the holdout split share it, so both see the
    same 'last item'."""
    import polars as pl

    frame, basket, session_gap_s = events.frame, events.basket, rules.session_gap_seconds
    has_group = "group" in frame.columns
    if basket:
        keys = ["group"]
        order = ["group", "row"]
    else:
        keys = ["user", "group"] if has_group else ["user"]
        order = keys + ["t", "row"]
    # A frame in input order (row ascending) needs no row key: a stable sort gives the
    # same order with one key column less to compare.
    in_order = frame["row"].is_sorted()
    lf = _stable_sort(frame, order[:-1] if in_order else order).lazy()

    # A sequence starts where the grouping keys change or the gap is exceeded.
    start = pl.lit(False)
    for k in keys:
        start = start | (pl.col(k) != pl.col(k).shift(1))
    if session_gap_s and not basket:
        start = start | ((pl.col("t") - pl.col("t").shift(1)) > int(session_gap_s * 1e6))
    lf = lf.with_columns(seq=start.fill_null(True).cum_sum())
    if rules.collapse_repeats and not basket:
        lf = lf.filter(~((pl.col("seq") == pl.col("seq").shift(1)) & (pl.col("item") == pl.col("item").shift(1))).fill_null(False))
    return lf.select("user", "item", "t", "seq", *(["group"] if basket else []))


def _stable_sort(frame, by: list[str]):
    """frame.sort(by, maintain_order=True), done as one stable sort per column from the last
    to the first, each text column sorted by its rank among its distinct values: the same
    order, several times faster than polars' multi-column sort on text keys."""
    import polars as pl

    for col in reversed(by):
        key = frame[col]
        if key.dtype == pl.Utf8:
            key = key.cast(pl.Enum(key.unique().drop_nulls().sort())).to_physical()
        frame = frame.sort(key, maintain_order=True)
    return frame


def mark_basket_holdout(lf, share: int = 10):
    """Basket holdout on a basket-mode `sequence_frame`: of the baskets with at least two
    items, about `share`% are test and as many again valid baskets (by a stable hash of the
    basket id; SequenceRules.basket_holdout_share); one item of each (by a stable hash of basket and item) is hidden (`_held`), the
    rest of the basket stays in training and is the query. Adds `_held` and `role`."""
    import polars as pl

    frame = lf.collect()
    groups = frame["group"].unique()
    items = frame["item"].unique()
    g_hash = pl.DataFrame({"group": groups, "_gh": [_crc(g) for g in groups]}, schema={"group": pl.Utf8, "_gh": pl.Int64})
    i_hash = pl.DataFrame({"item": items, "_ih": [_crc(i) for i in items]}, schema={"item": pl.Utf8, "_ih": pl.Int64})
    bucket = pl.col("_gh") % 100
    role = (pl.when((pl.len().over("seq") >= 2) & (bucket < share)).then(pl.lit("test"))
            .when((pl.len().over("seq") >= 2) & (bucket < 2 * share)).then(pl.lit("valid"))
            .otherwise(pl.lit(None, dtype=pl.Utf8)))
    pick = (pl.col("_ih") * 2654435761 + pl.col("_gh")) % 4294967296
    marked = (frame.join(g_hash, on="group", how="left", maintain_order="left")
              .join(i_hash, on="item", how="left", maintain_order="left")
              .with_columns(role=role, _pick=pick))
    marked = marked.with_columns(_cand=pl.col("_pick") == pl.col("_pick").min().over("seq"))
    first = pl.col("_cand").cast(pl.Int32).cum_sum().over("seq") == 1   # one item even if repeated
    marked = marked.with_columns(_held=pl.col("role").is_not_null() & pl.col("_cand") & first)
    return marked.drop("_gh", "_ih", "_pick", "_cand").lazy()


def _crc(text) -> int:
    import zlib

    return zlib.crc32(str(text).encode("utf-8"))


def held_out_mask(holdout: int):
    """True for each user's last `holdout` events (in sequence order), for users with at
    least `holdout + 2` events: at least two stay in training, one to query from."""
    import polars as pl

    n = pl.len().over("user")
    from_end = n - 1 - pl.int_range(pl.len()).over("user")
    return (n >= holdout + 2) & (from_end < holdout)

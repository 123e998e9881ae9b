"""Sharded extraction: events -> corpus in bounded memory, on this machine or a Dask cluster.

The input is split into shards by ranges of the user key (the basket key in basket mode):
every shard holds whole users, read by its own lazy scan that keeps only its key range
(plus the partitions inside --since / --until), so no shard ever loads the whole input.
Each shard runs the ordinary extraction (`build_corpus`) and writes a corpus shard with
its own token ids; the merge adds the shards' item counts into the global vocabulary
(most frequent first, ties by key, the one-file rule), rewrites each shard's ids into
global ones and appends the shards in key order. Key ranges, not hashes: the shards
concatenated in order are the users in the one-file order, so the corpus file is byte
for byte the one a single read of the same events writes, whatever the number of shards,
the partitioning of the input or the engine. With min_count > 1 a first pass counts
every shard's items, so rare items are judged on the whole input.

Memory: one shard's extraction peaks at about EVENT_BYTES per event of the shard; the
number of shards is chosen so that this fits --memory (default: a quarter of RAM).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from catvec.base.errors import CatvecError
from catvec.base.faults import fault_point

log = logging.getLogger(__name__)

EVENT_BYTES = 300       # peak bytes per event of one extraction: ~240 measured (docs/scale.md), with margin
SAMPLE_ROWS = 200_000   # user keys sampled to place the shard boundaries
ROW = "__catvec_row"


@dataclass(frozen=True)
class ShardJob:
    """Everything one shard task needs (picklable: a Dask worker runs it)."""

    source: object            # catvec.base.sources.Source
    index: int
    low: str | None           # first key of the shard (None: from the start, with the null keys)
    high: str | None          # first key of the next shard (None: to the end)
    key_col: str
    events: dict              # keyword arguments of events_from_frame
    window: tuple
    corpus: dict              # keyword arguments of build_corpus
    out_dir: str
    rare_items: tuple | None = None
    count_only: bool = False
    part: str = ""            # the shard's own file folder (catvec.pretraining.split); "": a scan of the input


@dataclass
class ShardPlan:
    source: object
    rows: int
    shards: int
    bounds: list = field(default_factory=list)   # n - 1 keys


def shard_count(rows: int, memory: int | None) -> int:
    """Shards needed for `rows` events to fit `memory` bytes (None: a quarter of RAM)."""
    budget = memory or machine_memory() // 4
    return max(1, math.ceil(rows * EVENT_BYTES / max(budget, 1)))


def machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 << 30


def count_rows(src) -> int:
    """Events in a Source: Parquet footers, or CSV bytes / bytes per row of the first 1 MiB."""
    import polars as pl

    if src.kind == "parquet":
        try:
            return int(src.scan().select(pl.len()).collect().item())
        except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
            src.check_parts()  # names the part that cannot be read
            from catvec.base.sources import first_line

            raise CatvecError(f"{src.name}: cannot read the events ({first_line(exc)})") from None
    total, sample = 0, b""
    for part in src.parts:
        if "://" in part and not part.startswith("file://"):
            from catvec.base.sources import _filesystem

            fs, path = _filesystem(part)
            total += int(fs.info(path)["size"])
        else:
            local = part.removeprefix("file://")
            total += os.path.getsize(local)
            if not sample:
                with open(local, "rb") as fh:
                    sample = fh.read(1 << 20)
    lines = max(1, sample.count(b"\n"))
    return int(total / max(1, len(sample) / lines))


def wants_shards(cfg, events=None) -> bool:
    """True when cfg's extraction runs sharded: a Dask engine, or more than one shard."""
    if events is not None:
        return False
    if cfg.engine == "dask" or cfg.shards > 1:
        return True
    if cfg.shards == 1:
        return False
    from catvec.base.sources import resolve_source

    return shard_count(count_rows(resolve_source(cfg.events_path, sep=cfg.sep)), cfg.memory_bytes) > 1


def plan_shards(cfg, minimum: int = 1) -> ShardPlan:
    """Resolve the input, check its parts and columns, choose the shards and their key ranges."""
    import polars as pl

    from catvec.base.keys import key_expr
    from catvec.base.sources import resolve_source
    from catvec.pretraining.events import events_from_frame, scan_events, time_window

    window = time_window(cfg.since, cfg.until)
    src = resolve_source(cfg.events_path, sep=cfg.sep)
    src.check_parts()
    lf = scan_events(src, window)
    # the columns the options name exist: checked on the schema, before any shard runs
    events_from_frame(lf.head(0).collect().with_row_index(ROW), src.name, "", **event_options(cfg), row=ROW)
    rows = count_rows(src)
    n = cfg.shards or max(minimum, shard_count(rows, cfg.memory_bytes))
    plan = ShardPlan(source=src, rows=rows, shards=n)
    if n > 1:
        col = key_column(cfg)
        dtype = lf.collect_schema()[col]
        step = max(1, rows // SAMPLE_ROWS)
        sample = (lf.select(pl.col(col)).gather_every(step).select(key_expr(col, dtype).alias("k"))
                  .drop_nulls().sort("k").collect()["k"])
        if len(sample):
            cuts = sorted({sample[min(len(sample) - 1, (i * len(sample)) // n)] for i in range(1, n)})
            plan.bounds = [c for c in cuts if c > sample[0]]
        plan.shards = len(plan.bounds) + 1
    log.info("extraction: %s, about %d events in %d shard(s)", src.name, rows, plan.shards)
    return plan


def key_column(cfg) -> str:
    return cfg.basket_col or cfg.user_col


def event_options(cfg) -> dict:
    return {"user_col": cfg.user_col, "item_col": cfg.item_col, "time_col": cfg.time_col,
            "session_col": cfg.session_col, "basket_col": cfg.basket_col, "time_unit": cfg.time_unit,
            "time_format": cfg.time_format, "drop_nulls": cfg.drop_nulls}


def corpus_options(cfg) -> dict:
    from catvec.pretraining.config import HOLDOUT_MODES
    from catvec.pretraining.corpus import extraction_options

    return {**extraction_options(cfg), "min_count": cfg.min_count, "min_sequence_length": cfg.min_sequence_length,
            "max_sequence_length": cfg.max_sequence_length, "holdout": HOLDOUT_MODES[cfg.holdout]}


def shard_jobs(cfg, plan: ShardPlan, out_dir: Path) -> list[ShardJob]:
    from catvec.pretraining.events import time_window

    edges = [None, *plan.bounds, None]
    return [ShardJob(source=plan.source, index=i, low=edges[i], high=edges[i + 1], key_col=key_column(cfg),
                     events=event_options(cfg), window=time_window(cfg.since, cfg.until),
                     corpus=corpus_options(cfg), out_dir=str(Path(out_dir).resolve()))
            for i in range(plan.shards)]


def read_shard(job: ShardJob):
    """The EventsTable of one shard: its file folder when the input was split, else a lazy
    scan of the input filtered on its key range, then collected."""
    import polars as pl

    from catvec.base.keys import key_expr
    from catvec.pretraining.events import events_from_frame, scan_events

    if job.part:
        lf = pl.scan_parquet(Path(job.part) / "*.parquet", hive_partitioning=False)
    else:
        lf = scan_events(job.source, job.window, row_index=ROW)
    schema = lf.collect_schema()
    key = key_expr(job.key_col, schema[job.key_col])
    keep = None
    if job.low is not None:
        keep = key >= job.low
    if job.high is not None:
        below = key < job.high
        keep = below if keep is None else keep & below
    if keep is not None and job.low is None:
        keep = keep | key.is_null()   # empty keys go to the first shard, which refuses or drops them
    opts = job.events
    lf = lf.select(shard_columns(job, schema))
    if keep is not None and not job.part:  # a shard's file holds only its range
        lf = lf.filter(keep)
    try:
        raw = lf.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        from catvec.base.sources import first_line

        raise CatvecError(f"{job.source.name}: cannot read shard {job.index} ({first_line(exc)})") from None
    return events_from_frame(raw, job.source.name, "", **opts, window=job.window, row=ROW)


def shard_columns(job: ShardJob, schema) -> list[str]:
    """The input columns a shard reads (those the options name) and the input position."""
    opts = job.events
    wanted = [opts["user_col"], opts["item_col"], opts["time_col"], opts["session_col"], opts["basket_col"]]
    return [c for c in dict.fromkeys(wanted) if c and c in schema] + [ROW]


def run_shard(job: ShardJob) -> dict:
    """One shard task: count its items (count_only) or write its corpus shard. Small results only."""
    from catvec.pretraining.corpus import build_corpus, count_items

    fault_point("shard-extract")
    events = read_shard(job)
    if job.count_only:
        opts = {k: job.corpus[k] for k in ("session_gap_s", "basket", "collapse_repeats", "holdout", "basket_share")}
        counts = count_items(events, **opts)
        return {"index": job.index, "items": counts["item"].to_list(), "counts": counts["len"].to_list()}
    out = Path(job.out_dir)
    path = out / f"shard-{job.index:05d}.txt"
    corpus = build_corpus(events, path, **job.corpus, source=job.source.name,
                          rare_items=job.rare_items, allow_empty=True)
    heldout = None
    if corpus.heldout is not None and corpus.heldout.height:
        heldout = str(out / f"shard-{job.index:05d}.heldout.parquet")
        corpus.heldout.write_parquet(heldout)
    return {"index": job.index, "path": str(path), "keys": corpus.keys, "counts": corpus.counts,
            "stats": corpus.stats, "length_counts": corpus.length_counts, "heldout": heldout}


def extract_sharded(cfg, path, engine=None, split=None):
    """cfg's events -> Corpus at `path`, shard by shard on cfg.engine (see module doc).
    `split`: the input already split into shard files (catvec.pretraining.split.SplitEvents);
    without one (or with fewer shards than the engine has slots) the input is split here,
    into a folder beside `path` that is removed afterwards, also on failure.

    Example: extract_sharded(PretrainConfig(events="events/", shards=8), "corpus.txt")
    """
    from catvec.pretraining.engines import open_engine
    from catvec.pretraining.split import open_split

    path = Path(path)
    out_dir = path.parent / (path.name + ".shards")
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    try:
        with (engine or open_engine(cfg)) as run:
            if split is None or len(split.jobs) < run.slots:
                split = open_split(cfg, out_dir / "events", minimum=run.slots)
            jobs = [replace(j, out_dir=str(out_dir.resolve())) for j in split.jobs]
            rare = None
            if cfg.min_count > 1 and len(jobs) > 1:
                rare = rare_items(run.map(run_shard, [replace(j, count_only=True) for j in jobs]), cfg.min_count)
                jobs = [replace(j, rare_items=rare) for j in jobs]
            results = run.map(run_shard, jobs)
        return merge_shards(results, path, cfg, split.source, rare)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def rare_items(results: list[dict], min_count: int) -> tuple:
    import polars as pl

    frames = [pl.DataFrame({"item": r["items"], "len": r["counts"]}, schema={"item": pl.Utf8, "len": pl.Int64})
              for r in results]
    totals = pl.concat(frames).group_by("item").agg(pl.col("len").sum())
    return tuple(sorted(totals.filter(pl.col("len") < min_count)["item"].to_list()))


def merge_shards(results: list[dict], path: Path, cfg, source: str, rare) -> "object":
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
        raise CatvecError(f"{source}: no events (the input has no rows{' in the since / until range' if cfg.since or cfg.until else ''})")
    if stats["tokens"] == 0:
        raise CatvecError(
            f"{source}: every event was dropped by the filters (min_count={cfg.min_count}, "
            f"min_sequence_length={cfg.min_sequence_length}{', session_gap' if cfg.session_gap else ''}); "
            "lower them or check the user / time columns")
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as out:
        for r, local in zip(results, locals_):
            mapping = local.join(vocab.select("item", "tok"), on="item", how="left", maintain_order="left")["tok"]
            append_remapped(Path(r["path"]), mapping, out)
    os.replace(tmp, path)
    heldout = None
    if corpus_holdout(cfg):
        parts = [pl.read_parquet(r["heldout"]) for r in results if r["heldout"]]
        heldout = pl.concat(parts) if parts else pl.DataFrame(schema={"user": pl.Utf8, "item": pl.Utf8, "role": pl.Utf8})
    log.info("corpus: %d sequences, %d tokens, %d items (%d shards)", stats["lines"], stats["tokens"],
             stats["vocab_size"], len(results))
    return Corpus(path=path, keys=vocab["item"].to_list(), stats=stats, basket=bool(cfg.basket_col),
                  heldout=heldout, counts=vocab["len"].to_list())


def corpus_holdout(cfg) -> bool:
    return cfg.holdout != "none"


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

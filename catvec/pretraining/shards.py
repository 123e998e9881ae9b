"""Sharded extraction: events -> corpus in bounded memory, on this machine or a Dask cluster.

The input is split into shards by ranges of the user key (the basket key in basket mode):
every shard holds whole users. One streaming pass over the input (`split_input`) writes
each event into its shard's own Parquet files, keeping only the columns the options name
and the event's position in the whole input; each shard then reads only its file, so the
input is read once whatever the number of shards (one input that fits one shard is read
directly). Each shard runs the ordinary extraction (`build_corpus`) and writes a corpus
shard with its own token ids; catvec.pretraining.merge adds the shards' item counts into
the global vocabulary, rewrites each shard's ids into global ones and appends the shards
in key order. Key ranges, not hashes: the shards concatenated in order are the users in
the one-file order, so the corpus file is byte for byte the one a single read of the same
events writes, whatever the number of shards, the partitioning of the input or the
engine. With min_count > 1 a first pass counts every shard's items, so rare items are
judged on the whole input. The shard files of a run's events are also what its tuning
sample and holdout evaluation read (catvec.pretraining.split).

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
from catvec.pretraining.config import EventOptions, Extraction, SequenceRules

log = logging.getLogger(__name__)

SHARD = "__catvec_shard"  # the column of an event's shard while the input is split
EVENT_BYTES = 300       # peak bytes per event of one extraction: ~240 measured (docs/scale.md), with margin
SAMPLE_ROWS = 200_000   # user keys sampled to place the shard boundaries
ROW = "__catvec_row"


@dataclass(frozen=True)
class ShardJob:
    """Everything one shard task needs (picklable: a Dask worker runs it)."""

    source: object            # catvec.base.tables.Source
    index: int
    low: str | None           # first key of the shard (None: from the start, with the null keys)
    high: str | None          # first key of the next shard (None: to the end)
    key_col: str
    events: EventOptions      # how the shard's rows are read
    window: tuple
    corpus: SequenceRules     # the sequence rules of build_corpus
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
    window: tuple = (None, None)                 # since / until in microseconds, parsed once


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
            from catvec.base.errors import first_line

            raise CatvecError(f"{src.name}: cannot read the events ({first_line(exc)})") from None
    total, sample = 0, b""
    for part in src.parts:
        if "://" in part and not part.startswith("file://"):
            from catvec.base.remote import filesystem

            fs, path = filesystem(part)
            total += int(fs.info(path)["size"])
        else:
            local = part.removeprefix("file://")
            total += os.path.getsize(local)
            if not sample:
                with open(local, "rb") as fh:
                    sample = fh.read(1 << 20)
    lines = max(1, sample.count(b"\n"))
    return int(total / max(1, len(sample) / lines))


def wants_shards(options: EventOptions, extraction: Extraction, events=None) -> bool:
    """True when the extraction runs sharded: a Dask engine, or more than one shard."""
    if events is not None:
        return False
    if extraction.engine == "dask" or extraction.shards > 1:
        return True
    if extraction.shards == 1:
        return False
    from catvec.base.tables import resolve_source

    return shard_count(count_rows(resolve_source(options.path, sep=options.sep)), extraction.memory_bytes) > 1


def plan_shards(options: EventOptions, extraction: Extraction, minimum: int = 1) -> ShardPlan:
    """Resolve the input, check its parts and columns, choose the shards and their key ranges."""
    import polars as pl

    from catvec.base.keys import key_expr
    from catvec.base.tables import resolve_source
    from catvec.pretraining.events import events_from_frame, time_window

    window = time_window(options.since, options.until)
    src = resolve_source(options.path, sep=options.sep)
    src.check_parts()
    lf = src.scan(window=window)
    # the columns the options name exist: checked on the schema, before any shard runs
    events_from_frame(lf.head(0).collect().with_row_index(ROW), src.name, "", options, row=ROW)
    rows = count_rows(src)
    n = extraction.shards or max(minimum, shard_count(rows, extraction.memory_bytes))
    plan = ShardPlan(source=src, rows=rows, shards=n, window=window)
    if n > 1:
        col = options.key_col
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


def shard_jobs(options: EventOptions, rules: SequenceRules, plan: ShardPlan, out_dir: Path) -> list[ShardJob]:
    edges = [None, *plan.bounds, None]
    return [ShardJob(source=plan.source, index=i, low=edges[i], high=edges[i + 1], key_col=options.key_col,
                     events=options, window=plan.window,
                     corpus=rules, out_dir=str(Path(out_dir).resolve()))
            for i in range(plan.shards)]


def read_shard(job: ShardJob):
    """The EventsTable of one shard: its file folder when the input was split, else a lazy
    scan of the input filtered on its key range, then collected."""
    import polars as pl

    from catvec.base.keys import key_expr
    from catvec.pretraining.events import events_from_frame

    if job.part:
        lf = pl.scan_parquet(Path(job.part) / "*.parquet", hive_partitioning=False)
    else:
        lf = job.source.scan(ROW, job.window)
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
    lf = lf.select(shard_columns(job, schema))
    if keep is not None and not job.part:  # a shard's file holds only its range
        lf = lf.filter(keep)
    try:
        raw = lf.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        from catvec.base.errors import first_line

        raise CatvecError(f"{job.source.name}: cannot read shard {job.index} ({first_line(exc)})") from None
    return events_from_frame(raw, job.source.name, "", job.events, window=job.window, row=ROW)


def shard_columns(job: ShardJob, schema) -> list[str]:
    """The input columns a shard reads (those the options name) and the input position."""
    opts = job.events
    wanted = [opts.user_col, opts.item_col, opts.time_col, opts.session_col, opts.basket_col]
    return [c for c in dict.fromkeys(wanted) if c and c in schema] + [ROW]


def run_shard(job: ShardJob) -> dict:
    """One shard task: count its items (count_only) or write its corpus shard. Small results only."""
    from catvec.pretraining.corpus import build_corpus, count_items

    fault_point("shard-extract")
    events = read_shard(job)
    if job.count_only:
        counts = count_items(events, job.corpus)
        return {"index": job.index, "items": counts["item"].to_list(), "counts": counts["len"].to_list()}
    out = Path(job.out_dir)
    path = out / f"shard-{job.index:05d}.txt"
    corpus = build_corpus(events, path, job.corpus, rare_items=job.rare_items, allow_empty=True)
    heldout = None
    if corpus.heldout is not None and corpus.heldout.height:
        heldout = str(out / f"shard-{job.index:05d}.heldout.parquet")
        corpus.heldout.write_parquet(heldout)
    return {"index": job.index, "path": str(path), "keys": corpus.keys, "counts": corpus.counts,
            "stats": corpus.stats, "length_counts": corpus.length_counts, "heldout": heldout}


def split_input(source, job, bounds: list, folder: Path) -> list[Path]:
    """One streaming pass over `source`: each event into the folder of its shard (the
    number of `bounds` at or below its key; an empty key: shard 0). Returns the folders."""
    import polars as pl

    from catvec.base.errors import first_line
    from catvec.base.keys import key_expr
    from catvec.base.writes import writing

    lf = source.scan(ROW, job.window)
    schema = lf.collect_schema()
    columns = shard_columns(job, schema)
    key = pl.col(SHARD)  # the normalised key, computed once: each comparison would compute it again
    shard = pl.sum_horizontal([(key >= bound).fill_null(False).cast(pl.UInt32) for bound in bounds])
    try:
        (lf.select(*columns, key_expr(job.key_col, schema[job.key_col]).alias(SHARD)).with_columns(shard.alias(SHARD))
         .sink_parquet(pl.PartitionBy(folder, key=SHARD, include_key=False), mkdir=True))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise CatvecError(f"{source.name}: cannot split the events into shard files in {folder} "
                          f"({first_line(exc)})") from None
    parts = [folder / f"{SHARD}={i}" for i in range(len(bounds) + 1)]
    empty = None
    for part in parts:  # a shard without events has no folder yet
        if not part.is_dir():
            if empty is None:
                empty = lf.select(columns).head(0).collect()
            with writing(part / "empty.parquet"):
                part.mkdir(parents=True)
                empty.write_parquet(part / "empty.parquet")
    log.info("split %s into %d shard files in one pass", source.name, len(parts))
    return parts


def split_jobs(options: EventOptions, rules: SequenceRules, extraction: Extraction, directory: Path,
               minimum: int = 1) -> tuple[str, list[ShardJob]]:
    """Plan the shards of the input `options` name and split it into their files under
    `directory`: (the input's name, a ShardJob per shard reading its file; one shard reads
    the input)."""
    plan = plan_shards(options, extraction, minimum)
    jobs = shard_jobs(options, rules, plan, directory)
    if plan.shards > 1:
        parts = split_input(plan.source, jobs[0], plan.bounds, directory / "events")
        jobs = [replace(job, part=str(part)) for job, part in zip(jobs, parts)]
    return plan.source.name, jobs


def extract_sharded(options: EventOptions, rules: SequenceRules, extraction: Extraction, path, engine=None,
                    split=None):
    """The events `options` name -> Corpus at `path` by `rules`, shard by shard on
    extraction.engine (see module doc).
    `split`: the input already split into shard files (catvec.pretraining.split.SplitEvents);
    without one (or with fewer shards than the engine has slots) the input is split here,
    into a folder beside `path` that is removed afterwards, also on failure.

    Example: extract_sharded(PretrainConfig(events="events/", shards=8), "corpus.txt")
    """
    from catvec.pretraining.engines import open_engine
    from catvec.pretraining.merge import merge_shards, rare_items

    path = Path(path)
    out_dir = path.parent / (path.name + ".shards")
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    try:
        with (engine or open_engine(extraction)) as run:
            if split is None or len(split.jobs) < run.slots:
                source, jobs = split_jobs(options, rules, extraction, out_dir / "events", minimum=run.slots)
            else:
                source, jobs = split.source, split.jobs
            jobs = [replace(j, out_dir=str(out_dir.resolve())) for j in jobs]
            rare = None
            if rules.min_count > 1 and len(jobs) > 1:
                rare = rare_items(run.map(run_shard, [replace(j, count_only=True) for j in jobs]), rules.min_count)
                jobs = [replace(j, rare_items=rare) for j in jobs]
            results = run.map(run_shard, jobs)
        return merge_shards(results, path, options, rules, source, rare)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)

"""The input split once into shard files: what extraction, tuning and evaluation read when
the events do not fit one shard.

One streaming pass over the input (catvec.pretraining.shards.split_input) writes each
event into the files of its shard (a folder of Parquet files per shard, by the shard's
user-key range from `plan_shards`), keeping only the columns the options name and each
event's position in the whole input. Every later reader reads one shard's files at a
time, so the input is read once whatever the number of shards (a lazy scan per shard
would read it once per shard), and memory stays bounded by one shard:

- extraction (catvec.pretraining.shards.extract_sharded) builds each shard's corpus;
- the tuner's sample (`SplitEvents.sample`): the events per user (basket) of every shard,
  then the sampled users' events: the very sample `autotune.sample_events` draws from the
  whole table;
- the holdout evaluation (`SplitEvents.build_tasks`): each shard's tasks are built and kept
  on disk (evaluation.TaskParts), scored one shard at a time.

Key ranges, not hashes, choose a user's shard: the shards in order are the users in the
order one read sorts them, so the merged corpus and the evaluation tasks are those of one
read (tests/pretraining/test_split.py). The files live in a run's temp area and are removed with it.

    with open_split(options, rules, extraction, "tmp/events") as split:
        sample = split.sample(50_000, seed=1)
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from catvec.pretraining.shards import read_shard, split_jobs

log = logging.getLogger(__name__)

SPLIT_DIR = ".events-split"   # in a run's staging directory: removed with it on failure


@dataclass
class SplitEvents:
    """A run's events as shards of whole users (whole baskets), in key order."""

    jobs: list                # ShardJob per shard (job.part: its folder of Parquet files; "" = read the input)
    source: str               # the input's name, for messages
    directory: Path
    basket: bool
    checksum: str = ""        # as EventsTable: the split is checked by the input watch, not by a checksum
    _sizes: object = field(default=None, repr=False)

    def __enter__(self) -> "SplitEvents":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def close(self) -> None:
        """Remove the shard files (and the evaluation's task parts)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def tables(self):
        """The EventsTable of each shard, one at a time, in key order."""
        for job in self.jobs:
            yield read_shard(job)

    def sizes(self):
        """Events per user (basket): a polars frame (user | group, len), one row per user.
        Memory: one row per user, not per event."""
        import polars as pl

        if self._sizes is None:
            by = self.by
            parts = [table.frame.group_by(by).len() for table in self.tables()]
            self._sizes = pl.concat(parts) if parts else pl.DataFrame(schema={by: pl.Utf8, "len": pl.UInt32})
        return self._sizes

    @property
    def by(self) -> str:
        return "group" if self.basket else "user"

    @property
    def height(self) -> int:
        """Events after reading (window, empty values dropped): the whole table's height."""
        return int(self.sizes()["len"].sum())

    def sample(self, max_events: int = 0, seed: int = 1, max_groups: int = 0):
        """The EventsTable of `autotune.sample_events` on the whole table (the same users,
        rows and order), read shard by shard: only the sample is held."""
        import polars as pl

        from catvec.pretraining.autotune import sample_keys
        from catvec.pretraining.events import EventsTable

        keep = sample_keys(self.sizes(), self.by, max_events, seed, max_groups)
        frames, stats = [], {"events_read": 0, "dropped": {}}
        for table in self.tables():
            stats["events_read"] += table.stats.get("events_read", table.frame.height)
            for name, n in table.stats.get("dropped", {}).items():
                stats["dropped"][name] = stats["dropped"].get(name, 0) + n
            frame = table.frame if keep is None else table.frame.filter(pl.col(self.by).is_in(keep.implode()))
            frames.append(frame)
        frame = pl.concat(frames).sort("row")
        if keep is not None:
            stats["events_read"] = frame.height
        return EventsTable(frame=frame, source=self.source, checksum=self.checksum, stats=stats, basket=self.basket)

    def build_tasks(self, keys: list[str], rules):
        """`evaluation.build_tasks` shard by shard: each shard's tasks are written to a file
        and returned as evaluation.TaskParts (scored a shard at a time), the counts added up."""
        import numpy as np
        import polars as pl

        from catvec.pretraining.evaluation import TaskParts, build_tasks

        folder = self.directory / "tasks"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        counts = np.zeros(len(keys), dtype=np.int64)
        paths: dict = {}
        targets: dict = {}
        held = []
        for i, table in enumerate(self.tables()):
            tasks, shard_counts, heldout = build_tasks(table, keys, rules)
            counts += shard_counts
            held.append(heldout)
            for role, task in tasks.items():
                path = folder / f"{role}-{i:05d}.npz"
                np.savez(path, indptr=task.indptr, items=task.items, targets=task.targets)
                paths.setdefault(role, []).append(path)
                targets.setdefault(role, []).append(task.targets)
        tasks = {role: TaskParts(paths[role], np.concatenate(targets[role])) for role in paths}
        heldout = pl.concat(held) if held else pl.DataFrame(schema={"user": pl.Utf8, "item": pl.Utf8, "role": pl.Utf8})
        return tasks, counts, heldout


def open_split(options, rules, extraction, directory, minimum: int = 1) -> SplitEvents:
    """The input `options` (an EventOptions) names split into shard files under `directory`
    (see the module doc), each shard's job with the sequence rules `rules`.

    Example: split = open_split(EventOptions(events="events/"), SequenceRules(), Extraction(memory="512MB"), "tmp")
    """
    directory = Path(directory)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    try:
        source, jobs = split_jobs(options, rules, extraction, directory, minimum)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return SplitEvents(jobs=jobs, source=source, directory=directory, basket=options.basket)


def is_split(table) -> bool:
    return isinstance(table, SplitEvents)

"""The input a version records is the input it was trained on: its checksum (`open_input`:
identity, checksum, identity again), and the checks that it did not change while the run read it.

A run takes the input's checksum before it reads the events, and may read them more than
once (extraction, tuning, evaluation; a sharded extraction scans the files once per shard).
A nightly export that lands while the run reads would otherwise be trained on bytes the
manifest does not name, and its corpus cached under the first file's checksum.

Rather than hash the input a second time (a full read: on a 1 GB file as long as the
extraction's own read), the run notes each part's identity (size, mtime and ctime in ns,
inode, device; a remote part's size and ETag: `catvec.base.tables.input_state`) before
the checksum, and compares it after the checksum and after every later read of the input
(extraction, before its corpus enters the cache; tuning; evaluation): a stat per part,
20-60 us against 3-5 ms for a sha256 of MovieLens' 2.5 MB ratings.csv (benchmarks/late_file.py). A file written in
place changes its ctime (which no tool can set back); one replaced by a rename changes its
inode; a part added to a folder changes the part list. A read of one file also compares
the sha256 it computes while parsing with the first one, at no extra cost. Any difference
stops the run with one line naming the part: nothing is cached under the checksum, no
version is written, and the next run reads the finished file. A change after the last
read does not matter: the run has the bytes it checked, and the manifest names them.

Leftovers of killed runs in OUT/.cache (extraction temp dirs) and OUT (JSON temp files)
are swept by the next run when the process that owned them is gone (`sweep_leftovers`);
an overlapping live run's temp dirs are kept.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from catvec.base.errors import CatvecError
from catvec.base.steps import step
from catvec.base.writes import process_alive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputWatch:
    spec: object          # EventOptions.path (a file, folder, glob, list or URL); None for a DataFrame
    sep: str
    state: tuple          # catvec.base.tables.input_state when the run started


def watch_input(options, events=None) -> InputWatch:
    """Note the identity of the input parts `options` (an EventOptions) name, before their
    checksum is taken."""
    from catvec.base.tables import input_state

    if events is not None:
        return InputWatch(spec=None, sep=options.sep, state=())
    try:
        state = input_state(options.path, options.sep)
    except (CatvecError, OSError):
        state = None  # missing or unreadable: the checksum step says so in its own words
    return InputWatch(spec=options.path, sep=options.sep, state=state)


@step(name="checksum-events", io=True)
def open_input(options, events=None) -> tuple[InputWatch, str]:
    """(watch, checksum) of the input `options` (an EventOptions) names: its parts' identity
    noted, its checksum taken, the identity compared again. One step, so that a retry after a
    late file (a flow retries io steps) notes the identity of the file that arrived: noted
    before the retry, the watch of a missing file would check nothing for the rest of the run."""
    watch = watch_input(options, events)
    checksum = checksum_events(options, events)
    check_unchanged(watch, "while its checksum was taken")
    return watch, checksum


def checksum_events(options, events=None) -> str:
    """sha256 of the events file `options` (an EventOptions) names, or of a DataFrame's rows."""
    from catvec.base.tables import read_frame, source_checksum

    if events is not None:
        return read_frame(events)[2]
    path = options.path
    try:
        return source_checksum(path)  # a file, folder, glob, list or URL; a clear message when missing
    except OSError as exc:
        raise CatvecError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def check_unchanged(watch: InputWatch | None, when: str) -> None:
    """Refuse, in one line naming the part, an input that changed since `watch` was taken."""
    from catvec.base.tables import input_state

    if watch is None or watch.spec is None or watch.state is None:
        return
    try:
        now = input_state(watch.spec, watch.sep)
    except (CatvecError, OSError):
        now = ()
    if now == watch.state:
        return
    before, after = dict(watch.state), dict(now)
    changed = next((p for p in before if before[p] != after.get(p)), None)
    if changed is None:
        added = next(p for p in after if p not in before)
        what = f"{watch.spec}: part {added} appeared"
    else:
        what = f"{changed}: the file {'was removed' if after.get(changed) is None else 'changed'}"
    raise CatvecError(f"{what} while this run read it ({when}); nothing was kept, so that no checksum names bytes "
                      "it did not train on: run again once the input is complete")


def check_read(table, checksum: str, watch: InputWatch | None, when: str):
    """After a read of the events (`table`: an EventsTable, None for a sharded extraction):
    refuse when it saw other bytes than `checksum` names. Returns the table."""
    if table is not None and table.checksum not in ("", checksum):
        raise CatvecError(f"{table.source}: the file changed while this run read it ({when}; its sha256 differs "
                          "from the one taken first); nothing was kept, so that no checksum names bytes it did not "
                          "train on: run again once the input is complete")
    check_unchanged(watch, when)
    return table


def sweep_leftovers(out: Path, cache_dir: str) -> list[str]:
    """Remove extraction temp dirs (OUT/.cache/.tmp-corpus-*, .old-*) and JSON temp files
    (OUT/.NAME.tmpPID, OUT/<version>/.NAME.tmpPID) whose process is gone. Returns the names removed."""
    out = Path(out)
    removed = []
    cache = out / cache_dir
    candidates = list(cache.glob(".tmp-corpus-*")) + list(cache.glob(".old-*")) if cache.is_dir() else []
    candidates += [p for p in (*out.glob(".*.tmp*"), *out.glob("*/.*.tmp*")) if p.is_file()]
    for path in candidates:
        pid = _owner(path.name)
        if pid is None or process_alive(pid):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path.name)
    if removed:
        log.info("removed %d leftover(s) of killed runs: %s", len(removed), ", ".join(sorted(removed)))
    return removed


def _owner(name: str) -> int | None:
    """The pid in a temp name: .tmp-corpus-KEY-PID-HEX (and .old- of it) or .NAME.tmpPID."""
    try:
        if name.startswith((".tmp-corpus-", ".old-")):
            return int(name.rsplit("-", 2)[1])
        return int(name.rsplit(".tmp", 1)[1])
    except (IndexError, ValueError):
        return None

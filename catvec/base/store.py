"""Versioned output directories: staging, the completeness marker, an atomic `latest`.

The layout of an output directory OUT is named in catvec.base.layout: complete versions,
`latest`, `.staging`, the corpus cache, promotions.json (every move of `latest`: version,
time, how (gate, promote, ...), written before `latest` moves; "interrupted": the move never
came) and `.lock` (held while `latest` moves, so overlapping runs take turns).

Every complete directory ends with a manifest and a COMPLETE marker (catvec.base.manifest);
files are written atomically (catvec.base.writes); checksums come from catvec.base.fingerprint.

A run writes only inside its own staging directory, renames it into place when every
file and the marker are on disk, then swaps `latest`. A crash at any point leaves the
previous `latest` whole; overlapping runs never share a directory, and the last run to
complete wins `latest`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from catvec.base.errors import CatvecError, WriteError
from catvec.base.faults import fault_point
from catvec.base.layout import COMPLETE, LATEST, LOCK, PROMOTIONS, STAGING
from catvec.base.manifest import check_inside, read_manifest
from catvec.base.steps import step
from catvec.base.writes import describe_os_error, fsync_dir, process_alive, write_json, writing

log = logging.getLogger(__name__)


class VersionStore:
    """Versions under one output directory. Example:

        store = VersionStore("artifacts")
        name, tmp = store.stage()        # write files into tmp ...
        store.commit(name, tmp)          # ... then it becomes artifacts/<name>
        store.publish(name)              # and artifacts/latest points at it
    """

    def __init__(self, root):
        self.root = Path(root)

    def prepare(self) -> None:
        """Create the output directory, or say clearly why it cannot be written."""
        try:
            (self.root / STAGING).mkdir(parents=True, exist_ok=True)
            probe = self.root / STAGING / f".probe{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CatvecError(f"cannot write to output directory {self.root} ({describe_os_error(exc)})") from None
        self._clean_stale_staging()

    def stage(self) -> tuple[str, Path]:
        """A fresh version name and its private staging directory."""
        self.prepare()
        name = new_version_name()
        path = self.root / STAGING / name
        try:
            with writing(path / ".pid"):
                path.mkdir()
                (path / ".pid").write_text(str(os.getpid()), encoding="utf-8")
        except WriteError:
            self.discard(path)
            raise
        return name, path

    def commit(self, name: str, staging: Path) -> Path:
        """Move a staged version (which must hold its COMPLETE marker) into place."""
        if not (staging / COMPLETE).is_file():
            raise RuntimeError(f"refusing to commit {staging}: no {COMPLETE} marker")
        fault_point("before-commit")
        (staging / ".pid").unlink(missing_ok=True)
        final = self.root / name
        os.rename(staging, final)
        fsync_dir(self.root)
        return final

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    @contextmanager
    def staged(self):
        """`with store.staged() as (name, staging):` a private staging dir that is removed
        if the block fails; a write error becomes one clear line. Commit inside the block."""
        name, staging = self.stage()
        try:
            yield name, staging
        except WriteError as exc:  # already one line naming the file
            self.discard(staging)
            raise WriteError(f"{exc}; latest is unchanged") from None
        except OSError as exc:
            self.discard(staging)
            where = exc.filename or self.root
            raise CatvecError(f"writing to {where} failed ({describe_os_error(exc)}); latest is unchanged") from None
        except BaseException:
            self.discard(staging)
            raise

    def publish(self, name: str) -> None:
        """Point `latest` at `name` atomically (build a new link, rename it over)."""
        tmp = self.root / f".{LATEST}.{os.getpid()}.{secrets.token_hex(3)}"
        os.symlink(name, tmp)
        fault_point("before-publish")
        os.replace(tmp, self.root / LATEST)
        fsync_dir(self.root)

    @contextmanager
    def locked(self):
        """Hold OUT/.lock: moves of `latest` and the promotions record happen one run at a time
        (runs still train in parallel; only the last few milliseconds are serialised)."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def promotions(self) -> list[dict]:
        """Every move of `latest`, oldest first: {"version", "at", "how"}; how is first, gate,
        ungated, forced (pretrain), promote or rollback (catvec promote)."""
        path = self.root / PROMOTIONS
        if not path.is_file():
            return []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise CatvecError(f"{path}: not valid JSON; delete it to start the record afresh") from None
        return data if isinstance(data, list) else []

    def record_promotion(self, name: str, how: str) -> list[dict]:
        """Append to OUT/promotions.json (call inside `locked()`, before `latest` moves, so a
        failed write leaves both unchanged). Returns the record as it was before."""
        entries = self.promotions()
        current = self.latest_name(check=False)  # a latest outside OUT is what promote mends
        if entries and entries[-1].get("version") != current and not entries[-1].get("interrupted"):
            # the last one was recorded, then its run was killed before `latest` moved
            entries[-1] = dict(entries[-1], interrupted=True)
        entry = {"version": name, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "how": how}
        write_json(self.root / PROMOTIONS, [*entries, entry])
        return entries

    def restore_promotions(self, entries: list[dict]) -> None:
        """Put the record back as it was when moving `latest` failed after it was written."""
        try:
            write_json(self.root / PROMOTIONS, entries)
        except OSError as exc:
            log.warning("could not restore %s (%s)", self.root / PROMOTIONS, describe_os_error(exc))

    def latest_name(self, check: bool = True) -> str | None:
        """The version `latest` names; `check`: refuse a link that leaves OUT (only `catvec
        promote`, which mends it, reads it without the check)."""
        link = self.root / LATEST
        if not link.is_symlink() and not link.exists():
            return None
        target = os.readlink(link) if link.is_symlink() else None
        if target and check:
            check_inside(self.root, link)
        return Path(target).name if target else None

    def versions(self) -> list[str]:
        """Complete versions, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.is_symlink() and not p.name.startswith(".") and (p / COMPLETE).is_file())

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` complete versions; never the one `latest` names."""
        if keep <= 0:
            return []
        current = self.latest_name()
        doomed = [v for v in self.versions()[:-keep] if v != current]
        for name in doomed:
            shutil.rmtree(self.root / name, ignore_errors=True)
        if doomed:
            log.info("removed %d old version(s): %s", len(doomed), ", ".join(doomed))
        return doomed

    def _clean_stale_staging(self) -> None:
        """Remove staging dirs and half-made `latest` links left by runs that died."""
        for link in self.root.glob(f".{LATEST}.*"):
            try:
                pid = int(link.name.split(".")[2])
            except (IndexError, ValueError):
                continue
            if not process_alive(pid):
                link.unlink(missing_ok=True)
        for path in (self.root / STAGING).iterdir():
            pid_file = path / ".pid"
            try:
                pid = int(pid_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pid = None
            if pid is not None and process_alive(pid):
                continue
            if pid is None and path.is_dir():
                # no pid yet: a run may be between mkdir and writing it; leave young ones
                try:
                    if (datetime.now().timestamp() - path.stat().st_mtime) < 3600:
                        continue
                except OSError:
                    continue
            shutil.rmtree(path, ignore_errors=True)


ANY_PARENT = object()  # publish_version without a parent to check


@step(name="publish")
def publish_version(store: VersionStore, name: str, staging: Path, keep: int = 0, promote: bool = True,
                    how: str | None = None, parent=ANY_PARENT, on_parent_moved=None) -> Path:
    """The last step of both pipelines: move the complete staged version into place, point
    `latest` at it (unless `promote` is False: a candidate), then apply the retention (`keep`).
    `how` (pretrain versions) is recorded in OUT/promotions.json before `latest` moves.

    `parent`: the version this run was compared against (None: OUT had none). Under the lock,
    when `latest` is no longer that version (a rollback or another run meanwhile), the version
    stays a candidate: on_parent_moved(reason) amends the staged files first and returns False."""
    with store.locked():
        current = store.latest_name()
        if promote and parent is not ANY_PARENT and current != parent:
            if parent is None:
                reason = (f"{current} was published while this run trained (OUT had no version when it started); "
                          f"it was not compared against {current}")
            else:
                reason = (f"its parent {parent} is no longer latest (latest is {current or 'none'}: moved while this "
                          f"run trained); it was not compared against {current or 'none'}")
            promote = on_parent_moved(reason) if on_parent_moved is not None else False
        final = store.commit(name, staging)
        if promote:
            record = store.record_promotion(name, how) if how else None
            try:
                store.publish(name)
            except BaseException:
                if record is not None:
                    store.restore_promotions(record)
                raise
        store.prune(keep)
    return final


def promote(out, version: str) -> str:
    """Point OUT/latest at an existing complete version (a candidate the gate held back, or an
    older version: a rollback), atomically, checksums verified first. Returns how it was
    recorded: promote or rollback.

    Example: promote("artifacts", "20261121T233000123Z-3f9a1c")
    """
    store = VersionStore(out)
    if not store.root.is_dir():
        raise CatvecError(f"{store.root}: no such output directory; pass the OUT of `catvec pretrain --out OUT`")
    name = Path(str(version)).name
    if name in (LATEST, "", ".", "..") or name.startswith("."):
        raise CatvecError(f"{version!r} is not a version name; `catvec versions {store.root}` lists them")
    directory = store.root / name
    if not directory.is_dir():
        raise CatvecError(f"version {name} not found in {store.root}; `catvec versions {store.root}` lists them")
    check_inside(store.root, directory)
    read_manifest(directory)  # incomplete or damaged: one line, latest untouched
    with store.locked():
        current = store.latest_name(check=False)  # a latest that leaves OUT is what this mends
        if current == name and (store.root / LATEST).resolve() == directory.resolve():
            return "unchanged"
        how = "rollback" if current is not None and name < current else "promote"
        try:
            record = store.record_promotion(name, how)
        except OSError as exc:
            raise CatvecError(f"cannot record the promotion in {store.root / PROMOTIONS} ({describe_os_error(exc)}); "
                              f"latest is unchanged") from None
        try:
            store.publish(name)
        except BaseException as exc:
            store.restore_promotions(record)
            if isinstance(exc, OSError):
                raise CatvecError(f"cannot move {store.root / LATEST} ({describe_os_error(exc)}); "
                                  f"latest is unchanged") from None
            raise
    return how


def new_version_name() -> str:
    """Sortable by time, unique across overlapping runs: 20261121T233000Z-3f9a1c."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)

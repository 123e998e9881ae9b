"""Versioned output directories: staging, the completeness marker, an atomic `latest`.

The layout of an output directory OUT is named in catvec.base.layout: complete versions,
`latest`, `.staging`, the corpus cache, promotions.json (every move of `latest`: version,
time, how (gate, promote, ...), written before `latest` moves; "interrupted": the move never
came) and `.lock` (held while `latest` moves, so overlapping runs take turns).

Every complete directory (a weight dir, a model dir) ends with manifest.json (checksums
of its files) and a COMPLETE marker holding the manifest's sha256: `finish_manifest`
writes them, `read_manifest` checks them. `write_json` is the one JSON writer (temp file,
fsync, rename); checksums come from catvec.base.fingerprint.

A run writes only inside its own staging directory, renames it into place when every
file and the marker are on disk, then swaps `latest`. A crash at any point leaves the
previous `latest` whole; overlapping runs never share a directory, and the last run to
complete wins `latest`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from catvec.base.errors import CatvecError, InputNotFound, WriteError
from catvec.base.faults import fault_point
from catvec.base.fingerprint import file_checksum
from catvec.base.layout import COMPLETE, LATEST, LOCK, MANIFEST, PROMOTIONS, STAGING, checksum_marker
from catvec.base.steps import step

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
        _fsync_dir(self.root)
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
        _fsync_dir(self.root)

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
            if not _alive(pid):
                link.unlink(missing_ok=True)
        for path in (self.root / STAGING).iterdir():
            pid_file = path / ".pid"
            try:
                pid = int(pid_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pid = None
            if pid is not None and _alive(pid):
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


def check_writable(path, flag: str = "--out", file: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work starts: one line
    naming the path and the option. `file`: the path is a file to be (re)written; else an
    output directory. Nothing is created.

    Example: check_writable("scored.csv", "--out", file=True)
    """
    path = Path(path)
    if file and path.is_dir():
        raise CatvecError(f"{flag} {path} is a directory; pass a file name")
    if not file and path.exists() and not path.is_dir():
        raise CatvecError(f"{flag} {path} is a file; pass a directory")
    existing = path.parent if file else path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CatvecError(f"{flag} {path}: cannot be created, {existing} is a file; choose another {flag}")
    if file and path.exists() and not os.access(path, os.W_OK):
        raise CatvecError(f"{flag} {path}: the file is not writable (permission denied); choose another {flag}")
    problem = _write_problem(existing)
    if problem:
        raise CatvecError(f"{flag} {path}: cannot write into {existing} ({problem}); choose another {flag}")


def _write_problem(directory: Path) -> str | None:
    """Why nothing can be written into an existing directory, or None: the permission bits,
    then a probe file (a read-only mount or a full disk show only when writing)."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return "permission denied"
    probe = directory / f".catvec-probe-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return _WRITE_ERRORS.get(exc.errno, exc.strerror or str(exc))
    return None


_WRITE_ERRORS = {errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
                 errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


def new_version_name() -> str:
    """Sortable by time, unique across overlapping runs: 20261121T233000Z-3f9a1c."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


def describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device; free some space or choose another --out"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied; choose a writable --out"
    if exc.errno == errno.EROFS:
        return "read-only file system; choose a writable --out"
    return exc.strerror or str(exc)


@contextmanager
def writing(path, partial=None):
    """`with writing(path):` a failed write (an OSError, or a safetensors error that carries
    one) becomes WriteError, one line naming `path` and why; the half-written file (`partial`,
    default `path`) is removed.

    Example: with writing(out / "model.safetensors"): save_file(tensors, str(out / "model.safetensors"))
    """
    try:
        yield
    except WriteError:
        raise
    except Exception as exc:
        cause = _os_error(exc)
        if cause is None:
            raise
        try:
            Path(partial or path).unlink(missing_ok=True)
        except OSError:
            pass
        raise WriteError(f"{path}: cannot write the file ({describe_os_error(cause)})") from None


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind a write failure: itself, or the errno a safetensors error reports."""
    if isinstance(exc, OSError):
        return exc
    match = re.search(r"os error (\d+)", str(exc)) if type(exc).__name__ == "SafetensorError" else None
    return OSError(int(match.group(1)), os.strerror(int(match.group(1)))) if match else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- manifests, checksums, atomic JSON --------------------------------------------

def write_json(path: Path, data) -> None:
    """Write JSON through a temp file + fsync + rename: never a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with writing(path, partial=tmp):
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, ensure_ascii=False, sort_keys=False)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no temp file behind
        raise


def write_checked_json(path: Path, data) -> None:
    """`write_json`, then a marker beside it (<name>.sha256) holding the file's sha256, the way
    COMPLETE holds a manifest's: state kept outside a manifest that later runs trust."""
    path = Path(path)
    write_json(path, data)
    marker = checksum_marker(path)
    tmp = marker.with_name(f".{marker.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(file_checksum(path) + "\n", encoding="utf-8")
        fsync_file(tmp)
        os.replace(tmp, marker)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_checked_json(path: Path):
    """The data `write_checked_json` wrote, or CatvecError saying why it cannot be trusted
    (missing, no checksum marker, checksum mismatch: edited or damaged, not JSON)."""
    path = Path(path)
    marker = checksum_marker(path)
    try:
        expected = marker.read_text(encoding="utf-8").strip()
        actual = file_checksum(path)
    except FileNotFoundError as exc:
        raise CatvecError(f"{exc.filename}: missing") from None
    except OSError as exc:
        raise CatvecError(f"{path}: cannot be read ({describe_os_error(exc)})") from None
    if expected != actual:
        raise CatvecError(f"{path}: checksum does not match {marker.name}; the file was changed or damaged")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatvecError(f"{path}: not valid JSON ({exc})") from None


def finish_manifest(directory: Path, manifest: dict, files: list[str], **extra) -> dict:
    """Add checksums of `files` to the manifest, write it, then the COMPLETE marker."""
    directory = Path(directory)
    manifest = {**manifest, **extra}
    manifest["files"] = {name: file_checksum(directory / name) for name in files}
    write_json(directory / MANIFEST, manifest)
    marker = directory / COMPLETE
    with writing(marker):
        marker.write_text(file_checksum(directory / MANIFEST) + "\n", encoding="utf-8")
        fsync_file(marker)
    return manifest


def resolve_version_dir(path) -> Path:
    """A version dir, OUT/latest, or an output dir (-> its latest)."""
    path = Path(path)
    if not path.exists():
        raise InputNotFound(f"weight directory {path} not found; run `catvec pretrain --out DIR` first")
    if path.is_dir() and not (path / MANIFEST).exists() and (path / LATEST).exists():
        path = path / LATEST
    if path.name == LATEST and path.is_symlink():
        check_inside(path.parent, path)
    return path


def check_inside(root, path) -> Path:
    """`path` (OUT/latest or OUT/<version>), all its links followed, as a version directly
    inside `root`; a link that leaves OUT is refused in one line. Trust nothing read back:
    a `latest` edited to point elsewhere would feed other files to every later command."""
    root, path = Path(root), Path(path)
    real = path.resolve()
    if real.parent != root.resolve():
        raise CatvecError(f"{path} points outside {root} (to {real}); a version must lie inside its output "
                          f"directory: point latest at one with `catvec promote {root} VERSION`")
    return real


def read_manifest(path, verify: bool = True) -> dict:
    """The manifest of a complete version directory, checked against its COMPLETE marker."""
    directory = resolve_version_dir(path)
    manifest_path = directory / MANIFEST
    marker = directory / COMPLETE
    if not directory.is_dir() or not manifest_path.is_file():
        raise CatvecError(f"{directory}: not a catvec weight directory (no {MANIFEST})")
    if not marker.is_file():
        raise CatvecError(f"{directory}: incomplete version (no {COMPLETE} marker); the run that wrote it did not finish")
    if verify:
        expected = marker.read_text(encoding="utf-8").strip()
        if expected != file_checksum(manifest_path):
            raise CatvecError(f"{manifest_path}: checksum does not match {COMPLETE}; the file was changed or damaged")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatvecError(f"{manifest_path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CatvecError(f"{manifest_path}: not a catvec manifest (no 'files' table)")
    if verify:
        for name, digest in manifest["files"].items():
            file = _inside(directory, name)
            if not file.is_file():
                raise CatvecError(f"{directory}: {name} listed in the manifest is missing")
            if file_checksum(file) != digest:
                raise CatvecError(f"{file}: checksum does not match the manifest; the file was changed or damaged")
    return manifest


def _inside(directory: Path, name: str) -> Path:
    """A file named in a manifest, refusing names that would leave the directory."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise CatvecError(f"{directory}: the manifest names a file outside its directory ({name!r})")
    return directory / name


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())

"""Writes that never leave a half-written file, and write failures as one clear line.

    write_json(path, data)            temp file, fsync, rename
    write_checked_json(path, data)    the same, plus <name>.sha256 beside it; read_checked_json trusts
                                      it only when the checksum matches (state kept outside a manifest)
    with writing(path): ...           an OSError (or a safetensors error carrying one) -> WriteError
                                      naming the file; the partial file removed
    check_writable(path, flag)        refuse an output path that cannot be written, before any work
    process_alive(pid)                whether the owner of a temp file still runs
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path

from catvec.base.errors import CatvecError, WriteError
from catvec.base.fingerprint import file_checksum
from catvec.base.layout import checksum_marker


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


def process_alive(pid: int) -> bool:
    """Whether the process `pid` still runs: a temp file or staging dir it owns is not a leftover."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def fsync_file(path: Path) -> None:
    """Flush a written file to disk before it is renamed or named by a marker."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


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

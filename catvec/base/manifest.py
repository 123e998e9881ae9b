"""Manifests: what makes a directory complete and trusted.

Every complete directory (a weight dir, a model dir) ends with manifest.json (checksums
of its files) and a COMPLETE marker holding the manifest's sha256: `finish_manifest`
writes them, `read_manifest` checks them (and every listed file). `resolve_version_dir`
turns OUT or OUT/latest into a version directory; `check_inside` keeps every link inside OUT.
"""

from __future__ import annotations

import json
from pathlib import Path

from catvec.base.errors import CatvecError, InputNotFound
from catvec.base.fingerprint import file_checksum
from catvec.base.layout import COMPLETE, LATEST, MANIFEST
from catvec.base.writes import fsync_file, write_json, writing


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

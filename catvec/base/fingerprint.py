"""Fingerprints: the one place catvec turns bytes, files and plain data into sha256 digests.

    file_sha256(path)       hex sha256 of a file's bytes (manifests, checkpoints, markers)
    file_checksum(path)     "sha256:<hex>" of a file: how manifests name an input or a file
    checksum_of(chunks)     "sha256:<hex>" over byte chunks in order (multi-part inputs, DataFrame rows)
    array_digest(array)     hex sha256 of an array's bytes (numpy: C order)
    digest(obj)             short hex sha256 of canonical JSON of plain data (cache and checkpoint keys)

Example: digest({"input": "sha256:ab..", "params": {"window": 5}}) -> "3f9a1c..." (24 hex digits)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import PurePath

PREFIX = "sha256:"


def file_sha256(path) -> str:
    """Hex sha256 of the whole file (hashlib.file_digest: one reused buffer, no Python loop)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_checksum(path) -> str:
    """"sha256:<hex>" of a file: how manifests name an input and the files of a directory."""
    return PREFIX + file_sha256(path)


def checksum_of(chunks: Iterable[bytes]) -> str:
    """"sha256:<hex>" of byte chunks fed in order."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return PREFIX + h.hexdigest()


def array_digest(array) -> str:
    """Hex sha256 of an array's bytes (numpy `tobytes`: C order, whatever the memory layout)."""
    return hashlib.sha256(array.tobytes()).hexdigest()


def digest(obj, length: int = 24) -> str:
    """The first `length` hex digits of the sha256 of `obj` as canonical JSON (keys sorted;
    dataclasses as dicts, paths as text): equal plain data -> equal digest in every process."""
    blob = json.dumps(obj, sort_keys=True, default=_plain)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")

"""catvec.base.fingerprint: the one sha256 helper (files, chunks, arrays, plain data)."""

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from catvec.base.fingerprint import array_digest, checksum_of, digest, file_checksum, file_sha256


def test_file_digests_are_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"catvec\n" * 1000)
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == want
    assert file_checksum(path) == "sha256:" + want


def test_chunks_hash_in_order():
    assert checksum_of([b"ab", b"c"]) == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert checksum_of([b"c", b"ab"]) != checksum_of([b"ab", b"c"])


def test_array_digest_ignores_memory_layout():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert array_digest(np.asfortranarray(a)) == array_digest(a) == hashlib.sha256(a.tobytes()).hexdigest()
    assert array_digest(a + 1) != array_digest(a)


@dataclasses.dataclass(frozen=True)
class Rules:
    window: int
    where: Path


def test_digest_is_canonical_json():
    assert digest({"b": 1, "a": [1, 2]}) == digest({"a": [1, 2], "b": 1})
    assert len(digest({"a": 1})) == 24 and len(digest({"a": 1}, length=64)) == 64
    assert digest({"a": 1}) != digest({"a": 2})
    # dataclasses as their fields, paths as text: a group hashes like the dict it holds
    assert digest(Rules(5, Path("x/y"))) == digest({"window": 5, "where": "x/y"})


def test_digest_refuses_what_has_no_plain_form():
    with pytest.raises(TypeError, match="cannot fingerprint a object"):
        digest({"a": object()})

"""Weight files: round trips, the manifest, checksums, interop exports."""

import json

import numpy as np
import pytest

from catvec.base.errors import CatvecError
from catvec.base.store import COMPLETE, MANIFEST, read_manifest
from catvec.base.vectors import (Vectors, export_projector, export_word2vec, load_vectors, load_word2vec,
                                 save_vectors)

ODD_KEYS = ["plain", "with space", "tab\there", "new\nline", "back\\slash", "ünï", "1001"]


@pytest.fixture
def vectors():
    rng = np.random.default_rng(3)
    return Vectors(keys=ODD_KEYS, matrix=rng.normal(size=(len(ODD_KEYS), 8)).astype(np.float32))


def test_save_load_exact(tmp_path, vectors):
    save_vectors(vectors, tmp_path / "v", {"params": {"dim": 8}})
    loaded = load_vectors(tmp_path / "v")
    assert loaded.keys == vectors.keys
    assert loaded.matrix.dtype == np.float32
    assert np.array_equal(loaded.matrix, vectors.matrix)


def test_golden_manifest_fields(tmp_path, vectors):
    save_vectors(vectors, tmp_path / "v", {"params": {"dim": 8}})
    manifest = json.loads((tmp_path / "v" / MANIFEST).read_text())
    assert manifest["format"] == "catvec-vectors" and manifest["format_version"] == 1
    assert manifest["shape"] == [7, 8]
    assert set(manifest["files"]) == {"vectors.safetensors", "keys.json"}
    assert all(v.startswith("sha256:") and len(v) == 71 for v in manifest["files"].values())
    assert (tmp_path / "v" / COMPLETE).read_text().startswith("sha256:")


def test_tampered_file_refused(tmp_path, vectors):
    save_vectors(vectors, tmp_path / "v")
    keys = tmp_path / "v" / "keys.json"
    keys.write_text(keys.read_text().replace("plain", "plane"))
    with pytest.raises(CatvecError, match="keys.json: checksum does not match"):
        load_vectors(tmp_path / "v")


def test_incomplete_version_refused(tmp_path, vectors):
    save_vectors(vectors, tmp_path / "v")
    (tmp_path / "v" / COMPLETE).unlink()
    with pytest.raises(CatvecError, match="incomplete version"):
        load_vectors(tmp_path / "v")


def test_manifest_cannot_point_outside(tmp_path, vectors):
    save_vectors(vectors, tmp_path / "v")
    manifest_path = tmp_path / "v" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["../../etc/passwd"] = "sha256:" + "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    # re-seal so only the path check can refuse it
    from catvec.base.store import sha256_file

    (tmp_path / "v" / COMPLETE).write_text("sha256:" + sha256_file(manifest_path))
    with pytest.raises(CatvecError, match="outside its directory"):
        read_manifest(tmp_path / "v")


def test_pickle_payload_is_never_unpickled(tmp_path, vectors):
    import pickle

    save_vectors(vectors, tmp_path / "v")
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "v" / "vectors.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CatvecError):
        load_vectors(tmp_path / "v")
    with pytest.raises(CatvecError):
        load_vectors(tmp_path / "v", verify=False)
    assert not marker.exists()


def test_word2vec_roundtrip_through_gensim(tmp_path, vectors):
    from gensim.models import KeyedVectors

    path = export_word2vec(vectors, tmp_path / "v.txt")
    kv = KeyedVectors.load_word2vec_format(str(path), binary=False)
    assert len(kv) == len(vectors)
    assert np.array_equal(kv["with\\sspace"], vectors["with space"])
    back = load_word2vec(path)
    assert back.keys == vectors.keys
    assert np.array_equal(back.matrix, vectors.matrix)


def test_projector_files(tmp_path, vectors):
    vec, meta = export_projector(vectors, tmp_path / "p", {"genre": {"plain": "drama\tx"}})
    rows = np.loadtxt(vec, delimiter="\t", dtype=np.float32)
    assert rows.shape == (7, 8)
    lines = meta.read_text().split("\n")
    assert lines[0] == "key\tgenre"
    assert lines[1] == "plain\tdrama\\tx"
    assert len([line for line in lines if line]) == 8


def test_most_similar_excludes_self_and_ranks(tmp_path):
    v = Vectors(keys=["a", "b", "c"], matrix=np.array([[1, 0], [0.9, 0.1], [-1, 0]], dtype=np.float32))
    assert [k for k, _ in v.most_similar("a", topn=2)] == ["b", "c"]
    with pytest.raises(CatvecError, match="'zzz' is not in the vectors"):
        v.most_similar("zzz")

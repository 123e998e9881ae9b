"""Weight files: round trips, the manifest, checksums, interop exports."""

import json

import numpy as np
import pytest

from catvec.base.errors import CatvecError
from catvec.base.layout import COMPLETE, MANIFEST
from catvec.base.manifest import read_manifest
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
    from catvec.base.fingerprint import file_checksum

    (tmp_path / "v" / COMPLETE).write_text(file_checksum(manifest_path))
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


def test_parquet_export_keeps_odd_keys_and_both_matrices(tmp_path, vectors):
    import polars as pl

    from catvec.base.vectors import export_parquet

    rng = np.random.default_rng(4)
    full = Vectors(keys=ODD_KEYS + ["cr\rkey", "a\x00b", " lead"], matrix=rng.normal(size=(10, 3)).astype(np.float32),
                   context=rng.normal(size=(10, 3)).astype(np.float32), counts=np.arange(10) + 5,
                   cold=[False] * 9 + [True])
    frame = pl.read_parquet(export_parquet(full, tmp_path / "v.parquet"))
    assert frame.columns == ["key", "vector", "context", "count", "cold"] and frame["key"].to_list() == full.keys
    assert frame["cold"].to_list() == [False] * 9 + [True]
    assert np.array_equal(np.stack(frame["vector"].to_numpy()), full.matrix)
    assert np.array_equal(np.stack(frame["context"].to_numpy()), full.context)
    assert frame["count"].to_list() == list(range(5, 15))
    bare = pl.read_parquet(export_parquet(vectors, tmp_path / "bare.parquet"))
    assert bare["context"].null_count() == len(vectors) and bare["count"].null_count() == len(vectors)
    assert not bare["cold"].any()


def test_projector_metadata_keeps_spaces_and_escapes_only_row_breakers(tmp_path, vectors):
    _, meta = export_projector(vectors, tmp_path / "p")
    lines = meta.read_text(encoding="utf-8").split("\n")
    assert lines[:7] == ["plain", "with space", "tab\\there", "new\\nline", "back\\slash", "ünï", "1001"]


def test_exports_take_the_input_context_or_concat_choice(tmp_path):
    from catvec.base.scoring import unit_rows

    rng = np.random.default_rng(5)
    v = Vectors(keys=["a b", "c"], matrix=rng.normal(size=(2, 4)).astype(np.float32),
                context=rng.normal(size=(2, 4)).astype(np.float32))
    assert np.array_equal(load_word2vec(export_word2vec(v, tmp_path / "c.txt", "context")).matrix, v.context)
    back = load_word2vec(export_word2vec(v, tmp_path / "b.txt", "concat"))
    assert back.keys == ["a b", "c"] and np.allclose(back.matrix, np.hstack([unit_rows(v.matrix), unit_rows(v.context)]))
    vec, _ = export_projector(v, tmp_path / "p", which="context")
    assert np.allclose(np.loadtxt(vec, delimiter="\t"), v.context, atol=1e-6)
    with pytest.raises(CatvecError, match="needs context vectors"):
        export_word2vec(Vectors(keys=["a"], matrix=np.ones((1, 2), dtype=np.float32)), tmp_path / "x.txt", "context")


def test_export_cli_parquet_and_refusals(tmp_path, vectors, capsys):
    import polars as pl

    from catvec.cli.main import main

    save_vectors(vectors, tmp_path / "v")
    assert main(["export", "--vectors", str(tmp_path / "v"), "--format", "parquet", "--out", str(tmp_path / "o.parquet")]) == 0
    assert pl.read_parquet(tmp_path / "o.parquet")["key"].to_list() == ODD_KEYS
    assert main(["export", "--vectors", str(tmp_path / "v"), "--format", "word2vec", "--pretrained-input", "context",
                 "--out", str(tmp_path / "o.txt")]) == 2
    assert "needs context vectors" in capsys.readouterr().err and not (tmp_path / "o.txt").exists()
    assert main(["export", "--vectors", str(tmp_path / "v"), "--format", "parquet", "--pretrained-input", "concat",
                 "--out", str(tmp_path / "p.parquet")]) == 2


def test_an_unknown_key_suggests_close_keys(tmp_path, capsys):
    from catvec.base.vectors import close_keys
    from catvec.cli.main import main

    keys = ["The Beatles", "Beatles Tribute Band", "Blur", "Radiohead", "Beat Happening"]
    assert close_keys(keys, "Beatles") == ["The Beatles", "Beatles Tribute Band"]
    assert close_keys(keys, "radiohed") == ["Radiohead"] and close_keys(keys, "zzzz") == []
    v = Vectors(keys=keys, matrix=np.eye(5, dtype=np.float32))
    with pytest.raises(CatvecError, match="did you mean 'The Beatles' or 'Beatles Tribute Band'"):
        v.most_similar("Beatles")
    save_vectors(v, tmp_path / "v")
    assert main(["similar", "--vectors", str(tmp_path / "v"), "beatles"]) == 2
    assert "did you mean 'The Beatles'" in capsys.readouterr().err

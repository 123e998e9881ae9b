"""`catvec similar --all` and catvec.base.related: every key's list, exact or approximate."""

import sys

import numpy as np
import polars as pl
import pytest

from catvec.base.errors import CatvecError
from catvec.base.related import related_items, write_related
from catvec.base.vectors import Vectors, save_vectors
from catvec.cli.main import main


def clustered_vectors(n=300, dim=16, clusters=12, seed=0, cold_every=0):
    """Keys in `clusters` tight groups, with context vectors, Zipf-ish counts and some cold keys."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    group = rng.integers(0, clusters, n)
    matrix = centres[group] + 0.3 * rng.normal(size=(n, dim))
    context = centres[group] * rng.uniform(0.5, 2.0, (n, 1)) + 0.3 * rng.normal(size=(n, dim))
    counts = np.maximum(1, (200 / np.arange(1, n + 1)).astype(np.int64))
    cold = (np.arange(n) % cold_every == 0) if cold_every else None
    return Vectors([f"k{i}" for i in range(n)], matrix, context=context, counts=rng.permutation(counts), cold=cold)


@pytest.fixture
def version(tmp_path):
    path = tmp_path / "v"
    save_vectors(clustered_vectors(n=60, dim=8, clusters=5, cold_every=7), path)
    return path


def as_lists(frame: pl.DataFrame) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for key, rank, other, score in frame.sort(["key", "rank"]).iter_rows():
        out.setdefault(key, []).append((other, score))
    return out


@pytest.mark.parametrize("scorer, min_support, cold", [("cosine", 1, True), ("context", 3, True),
                                                       ("cosine", 2, False)])
def test_all_lists_equal_similar_key_for_every_key(scorer, min_support, cold):
    vectors = clustered_vectors(n=200, cold_every=9)
    related = related_items(vectors, k=7, scorer=scorer, min_support=min_support, cold=cold)
    assert related.index == "exact" and related.items.shape == (200, 7)
    for i, key in enumerate(vectors.keys):
        expected = vectors.most_similar(key, topn=7, scorer=scorer, min_support=min_support, cold=cold)
        got = [(vectors.keys[j], float(s)) for j, s in zip(related.items[i], related.scores[i]) if j >= 0]
        assert [k for k, _ in got] == [k for k, _ in expected], key
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5, atol=1e-6)


def test_cli_writes_every_list_and_it_matches_similar_key(version, tmp_path, capsys):
    out = tmp_path / "related.parquet"
    assert main(["similar", "--vectors", str(version), "--all", "--out", str(out), "--k", "4",
                 "--scorer", "context", "--min-support", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().endswith(str(out)) and "exact index" in captured.out
    assert "similar --all: 60/60 keys (100%)" in captured.err
    frame = pl.read_parquet(out)
    assert frame.columns == ["key", "rank", "neighbour", "score"]
    assert frame["key"].n_unique() == 60 and (frame["key"] != frame["neighbour"]).all()
    ranks = frame.group_by("key").agg(pl.col("rank").sort())
    assert all(r == list(range(1, len(r) + 1)) and len(r) <= 4 for r in ranks["rank"].to_list())
    from catvec.base.vectors import load_vectors

    vectors = load_vectors(version)
    lists = as_lists(frame)
    for key in ["k0", "k7", "k33", "k59"]:
        expected = vectors.most_similar(key, topn=4, scorer="context", min_support=2)
        assert [k for k, _ in lists[key]] == [k for k, _ in expected]
        np.testing.assert_allclose([s for _, s in lists[key]], [s for _, s in expected], rtol=1e-5, atol=1e-6)


def test_fewer_keys_than_k_gives_shorter_lists(tmp_path):
    vectors = Vectors(["a", "b", "c"], np.eye(3, dtype=np.float32) + 0.1, counts=np.array([5, 1, 5]))
    related = related_items(vectors, k=10, scorer="cosine", min_support=2)
    path = write_related(vectors, related, tmp_path / "r.parquet")
    lists = as_lists(pl.read_parquet(path))
    assert [k for k, _ in lists["a"]] == ["c"] and [k for k, _ in lists["b"]] == ["a", "c"]


def test_approx_recall_on_clustered_vectors():
    pytest.importorskip("faiss")
    vectors = clustered_vectors(n=1500, dim=16, clusters=40, seed=1)
    for scorer in ("cosine", "context"):
        exact = related_items(vectors, k=10, scorer=scorer, index="exact")
        approx = related_items(vectors, k=10, scorer=scorer, index="approx")
        assert approx.index == "approx"
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.items, exact.items)])
        assert recall >= 0.95, (scorer, recall)
        # the scores of what it found are the exact scores, best first
        hit = approx.items[:, 0] == exact.items[:, 0]
        np.testing.assert_allclose(approx.scores[hit, 0], exact.scores[hit, 0], rtol=1e-5)
        assert (np.diff(approx.scores, axis=1) <= 1e-6).all()
        assert not (approx.items == np.arange(1500)[:, None]).any()


def test_ef_search_reaches_the_index_and_buys_recall(monkeypatch):
    pytest.importorskip("faiss")
    from catvec.base import related

    seen, search = [], related.search_index
    monkeypatch.setattr(related, "search_index", lambda *a, **kw: seen.append(kw["ef_search"]) or search(*a, **kw))
    vectors = clustered_vectors(n=1500, dim=16, clusters=40, seed=1)
    exact = related_items(vectors, k=10, scorer="cosine")

    def recall(ef):
        approx = related_items(vectors, k=10, scorer="cosine", index="approx", ef_search=ef)
        return np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.items, exact.items)])

    assert recall(400) >= recall(1) and seen == [400, 1]
    with pytest.raises(CatvecError, match="--ef-search must be an integer from 1 to 4,096, got 0"):
        related_items(vectors, index="approx", ef_search=0)


def test_approx_keeps_min_support_and_cold_rules():
    pytest.importorskip("faiss")
    vectors = clustered_vectors(n=400, cold_every=5)
    related = related_items(vectors, k=5, scorer="cosine", min_support=3, cold=False, index="approx")
    found = related.items[related.items >= 0]
    assert len(found) and (vectors.counts[found] >= 3).all() and not vectors.cold[found].any()


def refused(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words), err


def test_bad_input_is_refused_in_one_line_and_writes_nothing(version, tmp_path, capsys):
    out = tmp_path / "r.parquet"
    base = ["similar", "--vectors", str(version), "--all"]
    refused(capsys, base + ["--out", str(out), "--index", "fast"], ["--index", "'fast'", "exact, approx, auto"])
    refused(capsys, base + ["--out", str(out), "--k", "0"], ["--k must be >= 1"])
    refused(capsys, base, ["--out"])
    refused(capsys, base + ["--out", str(out), "k1"], ["drop the keys"])
    (tmp_path / "afile").write_text("x")
    refused(capsys, base + ["--out", str(tmp_path / "afile" / "r.parquet")], ["afile", "is a file"])
    refused(capsys, ["similar", "--vectors", str(tmp_path / "missing"), "--all", "--out", str(out)], ["missing"])
    refused(capsys, ["similar", "--vectors", str(version), "--index", "approx", "k1"], ["--index", "--all"])
    refused(capsys, ["similar", "--vectors", str(version)], ["--all"])
    refused(capsys, base + ["--out", str(out), "--ef-search", "128"], ["--ef-search", "--index approx or auto"])
    refused(capsys, base + ["--out", str(out), "--index", "auto", "--ef-search", "0"], ["--ef-search", "from 1"])
    refused(capsys, ["similar", "--vectors", str(version), "--ef-search", "128", "k1"], ["--ef-search", "--all"])
    refused(capsys, base + ["--out", str(tmp_path / "r.txt")], ["r.txt", ".parquet or .csv"])
    assert not out.exists()


def test_approx_without_the_extra_says_how_to_install(version, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)     # import faiss -> ImportError
    out = tmp_path / "r.parquet"
    refused(capsys, ["similar", "--vectors", str(version), "--all", "--out", str(out), "--index", "approx"],
            ["catvec[ann]", "--index exact"])
    assert not out.exists()
    vectors = clustered_vectors(n=50)
    with pytest.raises(CatvecError, match="catvec\\[ann\\]"):
        related_items(vectors, index="approx")
    monkeypatch.setattr("catvec.base.related.APPROX_FROM", 10)
    assert related_items(vectors, k=3, index="auto").index == "exact"     # falls back


def test_auto_uses_the_index_from_the_measured_size(version, tmp_path, capsys, monkeypatch):
    pytest.importorskip("faiss")
    vectors = clustered_vectors(n=50)
    assert related_items(vectors, k=3, index="auto").index == "exact"
    monkeypatch.setattr("catvec.base.related.APPROX_FROM", 10)
    assert related_items(vectors, k=3, index="auto").index == "approx"
    out = tmp_path / "r.parquet"
    assert main(["similar", "--vectors", str(version), "--all", "--out", str(out), "--index", "auto"]) == 0
    captured = capsys.readouterr()
    assert "building the approximate index of 60 keys" in captured.err and "approx index" in captured.out
    assert pl.read_parquet(out)["key"].n_unique() == 60


def test_a_failed_write_leaves_the_earlier_file_whole(version, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.parquet"
    assert main(["similar", "--vectors", str(version), "--all", "--out", str(out), "--k", "2", "-q"]) == 0
    before = out.read_bytes()

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full_disk)
    refused(capsys, ["similar", "--vectors", str(version), "--all", "--out", str(out), "--k", "5", "-q"],
            [str(out), "no space left"])
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_help_gives_the_example_and_the_auto_size(capsys):
    from catvec.base.related import APPROX_FROM

    with pytest.raises(SystemExit):
        main(["similar", "--help"])
    text = capsys.readouterr().out
    assert "catvec similar --vectors artifacts/latest --all --out related.parquet" in text
    assert f"approx from {APPROX_FROM:,} keys" in " ".join(text.split())


def test_a_csv_out_holds_the_same_rows_as_parquet(version, tmp_path):
    assert main(["similar", "--vectors", str(version), "--all", "--out", str(tmp_path / "r.parquet"), "-q"]) == 0
    assert main(["similar", "--vectors", str(version), "--all", "--out", str(tmp_path / "r.csv"), "-q"]) == 0
    parquet = pl.read_parquet(tmp_path / "r.parquet")
    csv = pl.read_csv(tmp_path / "r.csv", schema=parquet.schema)
    assert csv.height == parquet.height > 0 and csv.equals(parquet)

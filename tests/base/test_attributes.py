"""Cold keys: vectors composed from item attributes for keys with no history, end to end."""

import json

import numpy as np
import pytest

from catvec.base.attributes import compose_vectors, read_attributes
from catvec.base.errors import CatvecError
from catvec.base.vectors import Vectors, load_vectors, save_vectors
from catvec.cli.main import main

FAST = ["--epochs", "5", "--dim", "16", "--exact", "--no-tune", "--quiet"]


def clustered_vectors(seed: int = 0, n_groups: int = 3, per_group: int = 12, dim: int = 8):
    """Keys g<k>_<j> around one direction per group, counts 5..; context = input + a shift."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_groups, dim)) * 3
    keys, rows = [], []
    for g in range(n_groups):
        for j in range(per_group):
            keys.append(f"g{g}_{j}")
            rows.append(centers[g] + 0.3 * rng.standard_normal(dim))
    matrix = np.asarray(rows, dtype=np.float32)
    counts = rng.integers(5, 50, size=len(keys))
    return Vectors(keys=keys, matrix=matrix, context=matrix + 1.0, counts=counts), centers


def attributes_csv(write_csv, extra: str = "") -> "Path":
    lines = ["item_id,genre,size"]
    for g in range(3):
        lines += [f"g{g}_{j},genre{g},{'big' if j % 2 else 'small'}" for j in range(12)]
    return write_csv("items.csv", "\n".join(lines) + "\n" + extra)


# ---- the attributes table ------------------------------------------------------------------

def test_read_attributes_multi_valued_missing_and_separator(write_csv):
    path = write_csv("a.csv", "item_id,genre,year\n1,Action|Comedy,1995\n2,,\n3,Drama, 2001\n")
    attrs = read_attributes(path, "item_id")
    assert attrs.keys == ["1", "2", "3"] and attrs.columns == ["genre", "year"]
    assert attrs.values == [["genre=Action", "genre=Comedy", "year=1995"], [], ["genre=Drama", "year=2001"]]
    semi = write_csv("b.csv", "item_id,genre\n1,Action;Comedy\n")
    assert read_attributes(semi, "item_id", sep=";").values == [["genre=Action", "genre=Comedy"]]
    assert read_attributes(semi, "item_id", sep="").values == [["genre=Action;Comedy"]]
    assert read_attributes(path, "item_id", columns="year").values[0] == ["year=1995"]


@pytest.mark.parametrize("text, columns, message", [
    ("item_id,genre\n1,a\n2,b\n1,c\n", "", "lists key '1' twice"),
    ("sku,genre\n1,a\n", "", "has no key column 'item_id'"),
    ("item_id,genre\n1,a\n", "colour", "no attribute column 'colour'"),
    ("item_id\n1\n", "", "has only the key column"),
    ("item_id,title,genre\n" + "".join(f"{i},title {i},g{i % 2}\n" for i in range(12)), "",
     "column 'title' .* a different value for each of its 12 keys: an id"),
])
def test_read_attributes_refuses_bad_tables(write_csv, text, columns, message):
    with pytest.raises(CatvecError, match=message):
        read_attributes(write_csv("bad.csv", text), "item_id", columns)


def test_an_id_column_can_be_left_out(write_csv):
    text = "item_id,title,genre\n" + "".join(f"{i},title {i},g{i % 2}\n" for i in range(12))
    assert len(read_attributes(write_csv("ok.csv", text), "item_id", columns="genre")) == 12


# ---- composition ------------------------------------------------------------------------------

def test_cold_keys_land_near_their_group(write_csv):
    vectors, centers = clustered_vectors()
    path = attributes_csv(write_csv, "new0,genre0,big\nnew2,genre2,\nbare,,\n")
    composed, record = compose_vectors(vectors, read_attributes(path, "item_id"))
    assert record["composed"] == 2 and record["fitted_on"] == 36 and record["without_attributes"] == 1
    assert composed.keys[:36] == vectors.keys and "bare" not in composed   # no attribute: no vector
    np.testing.assert_array_equal(composed.matrix[:36], vectors.matrix)     # learned rows untouched
    np.testing.assert_array_equal(composed.counts[36:], [0, 0])
    assert composed.cold.tolist() == [False] * 36 + [True, True]
    assert composed.is_cold("new2") and not composed.is_cold("g2_0")
    for key, g in (("new0", 0), ("new2", 2)):
        distances = np.linalg.norm(centers - composed[key], axis=1)
        assert distances.argmin() == g
        neighbours = [k for k, _ in composed.most_similar(key, topn=5, scorer="cosine")]
        assert all(k.startswith(f"g{g}_") for k in neighbours)
    # context rows are composed from the context vectors (input + 1 here), then scaled to the
    # lower quartile of the context norms of the keys seen >= 20 times
    well_seen = vectors.context[vectors.counts >= 20]
    quartile = np.quantile(np.linalg.norm(well_seen, axis=1), 0.25)
    np.testing.assert_allclose(np.linalg.norm(composed.context[36:], axis=1), quartile, rtol=1e-5)
    unscaled = composed.matrix[36:] + 1.0
    cosines = np.sum(unit(composed.context[36:]) * unit(unscaled), axis=1)
    np.testing.assert_allclose(cosines, 1.0, atol=0.01)


def unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_composed_context_vectors_reach_context_lists(write_csv):
    """A ridge prediction averages many keys and comes out short; scaled to a well-seen key's
    norm, a cold key can top a context-scorer list of its group (it could not unscaled)."""
    rng = np.random.default_rng(3)
    dim, keys, rows = 8, [], []
    centers = rng.standard_normal((2, dim))
    for g in range(2):
        for j in range(40):
            keys.append(f"g{g}_{j}")
            rows.append(centers[g] + 3.0 * rng.standard_normal(dim))   # spread: the mean is much shorter
    matrix = np.asarray(rows, dtype=np.float32)
    vectors = Vectors(keys=keys, matrix=matrix, context=matrix.copy(), counts=np.full(len(keys), 30))
    text = "item_id,genre\n" + "".join(f"g{g}_{j},genre{g}\n" for g in range(2) for j in range(40)) + "new0,genre0\n"
    composed, _ = compose_vectors(vectors, read_attributes(write_csv("items.csv", text), "item_id"))
    norms = np.linalg.norm(matrix, axis=1)
    assert np.linalg.norm(composed.context[-1]) == pytest.approx(np.quantile(norms, 0.25), rel=1e-5)
    assert np.linalg.norm(composed.context[-1]) > 1.5 * np.linalg.norm(composed.matrix[-1])   # input side as fitted
    query = composed.matrix[composed.key_to_index["g0_0"]]
    scores = composed.context @ query
    scores[composed.key_to_index["g0_0"]] = -np.inf
    rank = int((scores > scores[-1]).sum())
    unscaled_rank = int((composed.context[:-1] @ query > composed.matrix[-1] @ query).sum())
    assert rank < unscaled_rank


def test_keys_seen_a_few_times_blend_with_their_attributes(write_csv):
    vectors, centers = clustered_vectors()
    attrs = read_attributes(attributes_csv(write_csv, "new1,genre1,big\n"), "item_id")
    plain, _ = compose_vectors(vectors, attrs)
    blended, record = compose_vectors(vectors, attrs, blend=3)
    rare = vectors.counts < 20
    assert record["blended"] == int(rare.sum()) > 0 and record["composed"] == 1
    np.testing.assert_array_equal(blended.matrix[:36][~rare], vectors.matrix[~rare])   # well-seen keys kept
    np.testing.assert_array_equal(plain.matrix[:36], vectors.matrix)                  # blend 0: all kept
    # a rare key moves toward its group's composed vector by 3 / (n + 3), context alike
    i = int(np.flatnonzero(rare)[0])
    share = 3 / (vectors.counts[i] + 3)
    moved = blended.matrix[i] - vectors.matrix[i]
    assert 0 < np.linalg.norm(moved) and np.allclose(blended.context[i] - vectors.context[i], moved, atol=0.05)
    group = int(vectors.keys[i][1])
    target = vectors.matrix[i] + moved / share                                           # the composed vector
    assert np.linalg.norm(centers - target, axis=1).argmin() == group
    np.testing.assert_array_equal(blended.matrix[36:], plain.matrix[36:])              # the cold row is the same


def test_compose_needs_keys_with_history(write_csv):
    vectors, _ = clustered_vectors()
    path = write_csv("other.csv", "item_id,genre\nx1,a\nx2,b\n")
    same, record = compose_vectors(vectors, read_attributes(path, "item_id"))
    assert same is vectors and record["composed"] == 0 and "no key of the attributes table" in record["reason"]


def test_cold_keys_are_never_fitted_on(write_csv):
    vectors, _ = clustered_vectors()
    first, _ = compose_vectors(vectors, read_attributes(attributes_csv(write_csv, "new0,genre0,big\n"), "item_id"))
    path = write_csv("more.csv", attributes_csv(write_csv).read_text() + "new0,genre0,big\nnew1,genre1,small\n")
    second, record = compose_vectors(first, read_attributes(path, "item_id"))
    assert record["fitted_on"] == 36 and record["composed"] == 1 and second.cold.sum() == 2


def test_weight_files_keep_the_cold_flag(tmp_path, write_csv):
    vectors, _ = clustered_vectors()
    composed, _ = compose_vectors(vectors, read_attributes(attributes_csv(write_csv, "new1,genre1,big\n"), "item_id"))
    loaded = load_vectors(save_vectors(composed, tmp_path / "v1"))
    assert loaded.cold.tolist() == composed.cold.tolist() and loaded.count("new1") == 0
    manifest = json.loads((tmp_path / "v1" / "manifest.json").read_text())
    assert "cold" in manifest["tensors"]
    # a version without cold keys writes no flag and loads as before
    assert load_vectors(save_vectors(vectors, tmp_path / "v0")).cold is None
    from safetensors.numpy import load_file

    assert "cold" not in load_file(str(tmp_path / "v0" / "vectors.safetensors"))


def test_lists_return_cold_keys_unless_left_out(write_csv):
    vectors, _ = clustered_vectors()
    vectors.min_support = 5   # cold keys (count 0) are candidates anyway
    composed, _ = compose_vectors(vectors, read_attributes(attributes_csv(write_csv, "new1,genre1,big\n"), "item_id"))
    with_cold = [k for k, _ in composed.most_similar("g1_0", topn=12, scorer="cosine")]
    without = [k for k, _ in composed.most_similar("g1_0", topn=12, scorer="cosine", cold=False)]
    assert "new1" in with_cold and "new1" not in without
    assert [k for k, _ in composed.recommend(["new1"], topn=3, scorer="context", cold=False)][0].startswith("g1_")


# ---- lifecycle ----------------------------------------------------------------------------------

def test_alignment_and_drift_leave_cold_keys_out(write_csv):
    from catvec.pretraining.alignment import align, anchor_rows
    from catvec.pretraining.drift import drift_report

    parent, _ = clustered_vectors()
    parent, _ = compose_vectors(parent, read_attributes(attributes_csv(write_csv, "new0,genre0,big\nnew1,genre1,big\n"),
                                                        "item_id"))
    # the child: new0 gained history (a learned vector, count 7); new1 is still cold
    rng = np.random.default_rng(3)
    rotation = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    child = Vectors(keys=parent.keys, matrix=parent.matrix @ rotation.T, context=parent.context @ rotation.T,
                    counts=np.concatenate([parent.counts[:36], [7, 0]]), cold=[False] * 37 + [True])
    mine, theirs = anchor_rows(child, parent, 1)
    assert len(mine) == 36 and max(mine) < 36
    aligned, record = align(child, parent, 1)
    assert record["anchors"] == 36 and aligned.cold.tolist() == child.cold.tolist()
    np.testing.assert_allclose(aligned.matrix[:36], parent.matrix[:36], atol=1e-4)
    drift = drift_report(aligned, parent, 1, None)
    assert drift["shared_keys"] == 36 and drift["warmed"] == 1 and drift["cold"] == 1


# ---- end to end ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cold_run(tmp_path_factory, clustered_events):
    """A pretrain of the clustered events with attributes for every item and two new ones."""
    root = tmp_path_factory.mktemp("cold")
    events = root / "events.csv"
    clustered_events.to_csv(events, index=False)
    lines = ["item_id,cluster,shelf"] + [f"c{c}_{j},k{c},s{j % 3}" for c in range(4) for j in range(10)]
    lines += ["new_2,k2,s1", "new_3,k3|k3,", "ghost,,"]
    items = root / "items.csv"
    items.write_text("\n".join(lines) + "\n")
    out = root / "out"
    assert main(["pretrain", "--events", str(events), "--out", str(out), "--item-attributes", str(items), *FAST]) == 0
    return root, out, items


def test_pretrain_composes_cold_keys_and_says_how_many(cold_run, capsys):
    root, out, _ = cold_run
    vectors = load_vectors(out / "latest")
    assert len(vectors) == 42 and vectors.is_cold("new_2") and vectors.count("new_3") == 0
    assert int(vectors.cold.sum()) == 2 and "ghost" not in vectors
    manifest = json.loads((out / "latest" / "manifest.json").read_text())
    assert manifest["cold_start"]["composed"] == 2 and manifest["cold_start"]["without_attributes"] == 1
    assert manifest["cold_start"]["columns"] == ["cluster", "shelf"]
    report = (out / "latest" / "report.md").read_text()
    assert "cold keys: 2 of the 43 keys with attributes have no history" in report
    near = [k for k, _ in vectors.most_similar("new_2", topn=5, scorer="cosine")]
    assert sum(k.startswith("c2_") for k in near) >= 4


def test_similar_and_recommend_cli_with_and_without_cold(cold_run, capsys):
    root, out, _ = cold_run
    capsys.readouterr()
    assert main(["similar", "--vectors", str(out), "--k", "3", "--scorer", "cosine", "new_3"]) == 0
    text = capsys.readouterr().out
    assert "cold: composed from its attributes" in text and text.count("c3_") == 3
    vectors = load_vectors(out / "latest")
    # a c2 item whose list holds the cold new_2, and the same list without it
    key = next(k for k in vectors.keys if k.startswith("c2_")
               and "new_2" in [o for o, _ in vectors.most_similar(k, topn=10, scorer="cosine")])
    assert main(["similar", "--vectors", str(out), "--k", "10", "--scorer", "cosine", key]) == 0
    assert "new_2\t" in capsys.readouterr().out
    assert main(["similar", "--vectors", str(out), "--k", "10", "--scorer", "cosine", "--no-cold", key]) == 0
    assert "new_2" not in capsys.readouterr().out
    queries = root / "queries.csv"
    queries.write_text("user_id,item_id,timestamp\nq1,c2_1,1\nq1,c2_2,2\n")
    for flag, expect in (([], True), (["--no-cold"], False)):
        recs = root / "recs.csv"
        assert main(["recommend", "--vectors", str(out), "--events", str(queries), "--k", "40", "--out", str(recs),
                     "--quiet", *flag]) == 0
        assert ("new_2" in recs.read_text()) is expect


def test_pretrain_refuses_a_bad_attributes_file_before_work(tmp_path, clustered_events, write_csv):
    events = tmp_path / "events.csv"
    clustered_events.to_csv(events, index=False)
    bad = write_csv("dup.csv", "item_id,cluster\nc0_1,k0\nc0_1,k1\n")
    out = tmp_path / "out"
    assert main(["pretrain", "--events", str(events), "--out", str(out), "--item-attributes", str(bad), *FAST]) == 2
    assert not (out / "latest").exists()
    with pytest.raises(CatvecError, match="attribute_cols needs item_attributes"):
        from catvec.pretraining.config import PretrainConfig

        PretrainConfig(attribute_cols="genre").validate()


def test_a_cold_key_that_gains_history_is_counted_by_the_drift_report(cold_run, clustered_events, tmp_path):
    import pandas as pd

    root, out, items = cold_run
    child_out = tmp_path / "out"
    import shutil

    shutil.copytree(out, child_out, symlinks=True)
    extra = pd.DataFrame([(f"u{u}", "new_2", 1_800_000_000 + u) for u in range(2, 120, 4)],
                         columns=["user_id", "item_id", "timestamp"])
    events = tmp_path / "more.csv"
    pd.concat([clustered_events, extra]).to_csv(events, index=False)
    assert main(["pretrain", "--events", str(events), "--out", str(child_out), "--item-attributes", str(items),
                 "--align-min-count", "5", "--force", *FAST]) == 0
    manifest = json.loads((child_out / "latest" / "manifest.json").read_text())
    assert manifest["drift"]["warmed"] == 1 and manifest["drift"]["cold"] == 1
    vectors = load_vectors(child_out / "latest")
    assert not vectors.is_cold("new_2") and vectors.count("new_2") > 0 and vectors.is_cold("new_3")
    assert "1 cold in the parent now have history" in (child_out / "latest" / "report.md").read_text()


# ---- finetune -------------------------------------------------------------------------------------

def test_finetune_starts_a_cold_table_key_from_its_attributes(tmp_path, write_csv):
    from ftdata import item_vectors, labeled_rows

    from catvec.finetuning.config import FinetuneConfig
    from catvec.finetuning.pipeline import finetune

    vectors = item_vectors()
    keep = [i for i, k in enumerate(vectors.keys) if k not in ("505", "515")]   # two keys lose their vectors
    saved = Vectors(keys=[vectors.keys[i] for i in keep], matrix=vectors.matrix[keep],
                    counts=np.full(len(keep), 10))
    vectors_dir = save_vectors(saved, tmp_path / "vectors" / "v1", {"kind": "pretrain", "params": {"item_col": "item_id"}})
    table = tmp_path / "labels.csv"
    frame = labeled_rows(300)
    frame.loc[:3, "item_id"] = [505, 515, 505, 515]
    frame.to_csv(table, index=False)
    items = write_csv("items.csv", "item_id,cluster\n" + "".join(f"{i},k{(i - 500) // 10}\n" for i in range(500, 560)))
    runs = {}
    for label, attrs in (("oov", ""), ("attributes", str(items))):
        cfg = FinetuneConfig(vectors=str(vectors_dir), table=str(table), target="y", cat_cols="item_id",
                             cont_cols="x", out=str(tmp_path / f"models-{label}"), epochs=1, auto="off",
                             item_attributes=attrs, seed=0, exact=True)
        runs[label] = finetune(cfg)
    assert runs["attributes"].alignment["item_id"]["hits"] == runs["oov"].alignment["item_id"]["hits"] + 2
    # the composed start sits near its cluster's centre, far closer than the OOV draw
    from catvec.finetuning.align import with_attributes

    composed = with_attributes(load_vectors(vectors_dir), vectors_dir, items)
    centre = vectors.matrix[10:20].mean(axis=0)
    assert np.linalg.norm(composed["515"] - centre) < 0.5 * np.linalg.norm(centre)


def test_finetune_attributes_for_other_ids_are_refused(tmp_path, write_csv):
    from ftdata import item_vectors

    from catvec.finetuning.align import with_attributes

    vectors_dir = save_vectors(item_vectors(), tmp_path / "v1", {"params": {"item_col": "item_id"}})
    items = write_csv("items.csv", "item_id,cluster\nx1,a\nx2,b\n")
    with pytest.raises(CatvecError, match="none of the keys of .* has a vector"):
        with_attributes(load_vectors(vectors_dir), vectors_dir, items)
    missing = write_csv("nokey.csv", "movie,cluster\n1,a\n")
    with pytest.raises(CatvecError, match="has no key column 'item_id'"):
        with_attributes(load_vectors(vectors_dir), vectors_dir, missing)


def test_pretrain_blends_rare_keys_and_says_so(tmp_path, clustered_events):
    import pandas as pd

    rare = pd.DataFrame([("u1", "rare_1", 1_700_000_100), ("u5", "rare_1", 1_700_000_200)],
                        columns=["user_id", "item_id", "timestamp"])
    events = tmp_path / "events.csv"
    pd.concat([clustered_events, rare]).sort_values(["user_id", "timestamp"]).to_csv(events, index=False)
    items = tmp_path / "items.csv"
    items.write_text("item_id,cluster\n" + "".join(f"c{c}_{j},k{c}\n" for c in range(4) for j in range(10))
                     + "rare_1,k1\n")
    runs = {}
    for blend in ("0", "3"):
        out = tmp_path / f"out{blend}"
        assert main(["pretrain", "--events", str(events), "--out", str(out), "--item-attributes", str(items),
                     "--attribute-blend", blend, *FAST]) == 0
        runs[blend] = (load_vectors(out / "latest"), json.loads((out / "latest" / "manifest.json").read_text()))
    (plain, m0), (blended, m3) = runs["0"], runs["3"]
    assert m0["cold_start"]["blended"] == 0 and m3["cold_start"]["blended"] == 1
    np.testing.assert_array_equal(plain["c0_1"], blended["c0_1"])          # exact mode: the same training
    assert not np.allclose(plain["rare_1"], blended["rare_1"]) and not blended.is_cold("rare_1")
    assert "1 keys seen under 20 times blend" in (tmp_path / "out3" / "latest" / "report.md").read_text()

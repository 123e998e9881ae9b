"""Pictures: the vector map and the training curves are real PNGs, and they show the data given.

The plotting functions return only the PNG's path, so the `drawn` fixture keeps each Figure
as it is saved (Figure.savefig, wrapped, still writes the file) and the tests read what was
drawn from it: points, colours, legend, labels, lines.
"""

import re

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from catvec.base.errors import CatvecError
from catvec.base.vectors import Vectors
from catvec.reports import plots
from catvec.reports.plots import pca_2d, plot_training_curves, plot_vector_map, read_item_attributes

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def clustered_vectors():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 4
    matrix = np.concatenate([c + rng.normal(size=(20, 16)) for c in centers])
    return Vectors([f"k{i}" for i in range(60)], matrix)


@pytest.fixture
def drawn(monkeypatch):
    """The list of Figures saved during the test, in order."""
    figures = []
    savefig = Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def the_figure(drawn) -> Figure:
    assert len(drawn) == 1, f"expected one saved figure, got {len(drawn)}"
    return drawn[0]


# ---- vector map ---------------------------------------------------------------------------

def map_parts(fig):
    """(axes, the point cloud: the biggest scatter, the labelled entries {label: colour})."""
    (ax,) = fig.axes
    cloud = max(ax.collections, key=lambda c: len(c.get_offsets()))
    entries = {c.get_label(): to_hex(c.get_facecolor()[0][:3]) for c in ax.collections
               if not c.get_label().startswith("_")}
    return ax, cloud, entries


def point_colours(cloud, coords) -> np.ndarray:
    """The hex colour each drawn point got, in the order of `coords` (the cloud may be shuffled);
    fails unless the cloud is exactly the given coordinates."""
    offsets = np.asarray(cloud.get_offsets())
    assert offsets.shape == coords.shape
    drawn_order, coords_order = np.lexsort(offsets.T[::-1]), np.lexsort(coords.T[::-1])
    assert np.allclose(offsets[drawn_order], coords[coords_order])
    faces = cloud.get_facecolor()
    faces = np.repeat(faces, len(offsets), axis=0) if len(faces) == 1 else faces
    colours = np.empty(len(coords), dtype=object)
    colours[coords_order] = [to_hex(f[:3]) for f in faces[drawn_order]]
    return colours


def variance_percent(label: str, axis: int) -> int:
    found = re.fullmatch(rf"PC {axis} \((\d+)% of variance\)", label)
    assert found, label
    return int(found.group(1))


def test_pca_separates_planted_clusters(clustered_vectors):
    coords, share = pca_2d(clustered_vectors.matrix)
    assert coords.shape == (60, 2) and 0 < share[1] <= share[0] <= 1
    means = [coords[i * 20:(i + 1) * 20].mean(axis=0) for i in range(3)]
    spread = max(coords[i * 20:(i + 1) * 20].std(axis=0).max() for i in range(3))
    gaps = [np.linalg.norm(means[a] - means[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert min(gaps) > 2 * spread
    again, _ = pca_2d(clustered_vectors.matrix.copy())
    assert np.allclose(coords, again)


def test_vector_map_with_attributes(clustered_vectors, tmp_path, write_csv, drawn):
    items = write_csv("items.csv", "item_id,genre\n" + "".join(f"k{i},g{i // 20}\n" for i in range(50)))
    attributes = read_item_attributes(items, "item_id", "")
    assert attributes["k0"] == "g0" and attributes["k45"] == "g2" and "k55" not in attributes
    path = plot_vector_map(clustered_vectors, tmp_path / "map.png", attributes=attributes, title="t")
    width, height = png_size(path)
    assert width > 600 and height > 500

    ax, cloud, entries = map_parts(the_figure(drawn))
    coords, share = pca_2d(clustered_vectors.matrix)
    colours = point_colours(cloud, coords)                       # every vector drawn, once
    # The legend: each value with its count, most common first, then the items without one.
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["g0 (20)", "g1 (20)", "g2 (10)", "other / none (10)"]
    assert list(entries) == legend
    # Each value's points have its legend colour; k50..k59 (no genre) are grey; the values differ.
    for value, rows in (("g0", slice(0, 20)), ("g1", slice(20, 40)), ("g2", slice(40, 50))):
        assert set(colours[rows]) == {entries[next(e for e in legend if e.startswith(value + " "))]}
    assert set(colours[50:]) == {plots.OTHER} == {entries["other / none (10)"]}
    assert len({entries[e] for e in legend}) == 4
    # Axis labels and title say what is shown.
    assert variance_percent(ax.get_xlabel(), 1) == round(100 * share[0])
    assert variance_percent(ax.get_ylabel(), 2) == round(100 * share[1])
    assert ax.get_title() == "t\n60 vectors x 16"
    # Labelled points: the first key of each coloured value among them, each at its own point, circled.
    labels = {t.get_text(): t.xy for t in ax.texts}
    assert {"k0", "k20", "k40"} <= set(labels) and len(labels) <= 8
    rings = [tuple(c.get_offsets()[0]) for c in ax.collections if len(c.get_offsets()) == 1]
    keys = clustered_vectors.keys
    for key, xy in labels.items():
        assert np.allclose(xy, coords[keys.index(key)])
        assert any(np.allclose(ring, xy) for ring in rings), f"{key} is not circled"


def test_vector_map_without_attributes(clustered_vectors, tmp_path, drawn):
    assert png_size(plot_vector_map(clustered_vectors, tmp_path / "m.png", n_labels=5))[0] > 500
    ax, cloud, entries = map_parts(the_figure(drawn))
    coords, _ = pca_2d(clustered_vectors.matrix)
    assert len(set(point_colours(cloud, coords))) == 1           # all 60 drawn, in one colour
    assert ax.get_legend() is None and entries == {}
    assert ax.get_title() == "60 vectors x 16"
    assert ax.get_xlabel().startswith("PC 1 (") and ax.get_ylabel().startswith("PC 2 (")
    labels = [t.get_text() for t in ax.texts]
    assert 1 <= len(labels) <= 5 and set(labels) <= set(clustered_vectors.keys)


def test_vector_map_draws_at_most_max_points(clustered_vectors, tmp_path, drawn, monkeypatch):
    monkeypatch.setattr(plots, "MAX_POINTS", 40)
    attributes = {f"k{i}": "even" if i % 2 == 0 else "odd" for i in range(60)}
    plot_vector_map(clustered_vectors, tmp_path / "m.png", attributes=attributes)
    ax, cloud, entries = map_parts(the_figure(drawn))
    offsets = np.asarray(cloud.get_offsets())
    coords, _ = pca_2d(clustered_vectors.matrix)                 # the PCA is of all 60
    assert len(offsets) == 40
    assert all(np.isclose(coords, p).all(axis=1).sum() == 1 for p in offsets)     # 40 distinct vectors
    assert ax.get_title() == "60 vectors x 16, 40 drawn"
    counts = [int(re.fullmatch(r"(even|odd) \((\d+)\)", e).group(2)) for e in entries]
    assert len(counts) == 2 and sum(counts) == 40                # the legend counts what is drawn


def test_vector_map_colours_only_the_most_common_values(clustered_vectors, tmp_path, drawn):
    sizes = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 1]                # v0..v11; 57 items, 3 without
    values = [f"v{j}" for j, size in enumerate(sizes) for _ in range(size)]
    attributes = dict(zip(clustered_vectors.keys, values))
    plot_vector_map(clustered_vectors, tmp_path / "m.png", attributes=attributes)
    ax, cloud, entries = map_parts(the_figure(drawn))
    assert plots.N_COLOURS == 9
    assert list(entries) == [f"v{j} ({sizes[j]})" for j in range(9)] + ["other / none (6)"]
    colours = point_colours(cloud, pca_2d(clustered_vectors.matrix)[0])
    assert list(colours).count(plots.OTHER) == 6                 # v9, v10, v11 and the 3 without
    assert len(set(colours)) == 10


def test_vector_map_labels_a_key_of_each_coloured_value_first(clustered_vectors, tmp_path, drawn):
    plot_vector_map(clustered_vectors, tmp_path / "m.png", attributes={"k59": "rare"}, n_labels=1)
    ax, _, entries = map_parts(the_figure(drawn))
    assert list(entries) == ["rare (1)", "other / none (59)"]
    assert [t.get_text() for t in ax.texts] == ["k59"]           # not k0, the first key


def test_vector_map_needs_three_vectors(tmp_path, drawn):
    with pytest.raises(CatvecError, match="at least 3 vectors"):
        plot_vector_map(Vectors(["a", "b"], np.eye(2, 4)), tmp_path / "m.png")
    assert drawn == [] and not (tmp_path / "m.png").exists()


def test_item_attributes_errors(write_csv):
    path = write_csv("items.csv", "item_id,genre\n1,a\n")
    with pytest.raises(CatvecError, match="no column 'colour'"):
        read_item_attributes(path, "item_id", "colour")


# ---- training curves ----------------------------------------------------------------------

def history(n, shift=0.0):
    return [{"epoch": e, "train_loss": 1 / e + shift, "val_loss": 1.2 / e + shift, "train_f1": 0.5 + e / 20,
             "val_f1": 0.45 + e / 25 - shift} for e in range(1, n + 1)]


def curves(ax):
    """{label: line} of the data lines, and the x of the best-epoch markers (unlabelled vertical lines)."""
    lines = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    markers = sorted(line.get_xdata()[0] for line in ax.lines if line.get_label().startswith("_"))
    return lines, markers


def test_training_curves_pretrained_vs_scratch(tmp_path, drawn):
    metrics = {"history": history(6), "best_epoch": 5, "main_metric": "f1",
               "scratch": {"history": history(8, 0.1), "best_epoch": 8}}
    assert png_size(plot_training_curves(metrics, tmp_path / "c.png"))[0] > 800

    fig = the_figure(drawn)
    loss_ax, metric_ax = fig.axes
    assert (loss_ax.get_title(), metric_ax.get_title()) == ("loss", "f1")
    assert "solid: pretrained init, dashed: scratch" in fig.get_suptitle()
    names = ["train (pretrained)", "val (pretrained)", "train (scratch)", "val (scratch)"]
    for ax, column in ((loss_ax, "loss"), (metric_ax, "f1")):
        lines, markers = curves(ax)
        assert sorted(lines) == sorted(names)
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(names)
        assert ax.get_xlabel() == "epoch"
        assert markers == [5, 8]                                 # best epoch of each run
        for name, line in lines.items():
            split, run = name.rstrip(")").split(" (")
            rows = metrics["history"] if run == "pretrained" else metrics["scratch"]["history"]
            assert list(line.get_xdata()) == [row["epoch"] for row in rows]
            assert np.allclose(line.get_ydata(), [row[f"{split}_{column}"] for row in rows])
            assert line.get_linestyle() == ("-" if run == "pretrained" else "--")
        assert lines["train (pretrained)"].get_color() == lines["train (scratch)"].get_color()
        assert lines["train (pretrained)"].get_color() != lines["val (pretrained)"].get_color()


def test_training_curves_single_run_and_missing_values(tmp_path, drawn):
    rows = history(4)
    del rows[0]["val_f1"]
    png_size(plot_training_curves({"history": rows, "main_metric": "val_f1"}, tmp_path / "c.png"))
    loss_ax, metric_ax = the_figure(drawn).axes
    assert metric_ax.get_title() == "f1"                         # "val_f1" names the metric, not the split
    assert the_figure(drawn).get_suptitle() == "grey line: best epoch"
    for ax in (loss_ax, metric_ax):
        lines, markers = curves(ax)
        assert sorted(lines) == ["train", "val"] and markers == []
        assert all(line.get_linestyle() == "-" for line in lines.values())
    val_f1 = curves(metric_ax)[0]["val"].get_ydata()
    assert np.isnan(val_f1[0]) and np.allclose(val_f1[1:], [row["val_f1"] for row in rows[1:]])
    assert np.allclose(curves(loss_ax)[0]["val"].get_ydata(), [row["val_loss"] for row in rows])

    with pytest.raises(CatvecError, match="history"):
        plot_training_curves({"history": []}, tmp_path / "d.png")
    assert len(drawn) == 1 and not (tmp_path / "d.png").exists()


def test_training_curves_skip_a_metric_the_history_lacks(tmp_path, drawn):
    plot_training_curves({"history": history(3), "main_metric": "rmse", "best_epoch": 2}, tmp_path / "c.png")
    loss_ax, metric_ax = the_figure(drawn).axes
    assert sorted(curves(loss_ax)[0]) == ["train", "val"] and curves(loss_ax)[1] == [2]
    assert curves(metric_ax)[0] == {} and curves(metric_ax)[1] == [2]
    assert metric_ax.get_legend() is None or metric_ax.get_legend().get_texts() == []
    assert metric_ax.get_title() == "rmse"


# ---- in the pipeline ----------------------------------------------------------------------

def test_pretrain_writes_map_and_report(tmp_path, sample_items, drawn):
    from catvec.pretraining.config import PretrainConfig
    from catvec.base.vectors import load_vectors
    from catvec.pretraining.pipeline import pretrain

    result = pretrain(PretrainConfig(out=str(tmp_path), epochs=2, dim=8, exact=True, item_attributes=str(sample_items)))
    assert {"vector_map.png", "report.md"} <= set(result.manifest["files"])
    assert "![vector_map.png](vector_map.png)" in (result.path / "report.md").read_text()
    png_size(result.path / "vector_map.png")

    vectors = load_vectors(result.path)
    ax, cloud, entries = map_parts(the_figure(drawn))
    point_colours(cloud, pca_2d(vectors.matrix)[0])               # the map shows the saved vectors
    assert ax.get_title().endswith(f"\n{len(vectors)} vectors x 8")
    attributes = read_item_attributes(sample_items, "item_id", "")
    assert entries and all(e.split(" (")[0] in set(attributes.values()) | {"other / none"} for e in entries)
    counts = [int(re.search(r"\((\d+)\)$", e).group(1)) for e in entries]
    assert sum(counts) == len(vectors)


def test_pretrain_draws_the_map_only_when_asked(tmp_path, sample_items):
    from catvec.pretraining.config import PretrainConfig
    from catvec.pretraining.pipeline import pretrain

    def files(**extra):
        cfg = PretrainConfig(out=str(tmp_path / str(len(extra)) / str(sorted(extra))), epochs=1, dim=8, exact=True,
                             tune=False, **extra)
        result = pretrain(cfg)
        report = (result.path / "report.md").read_text()
        assert ("vector_map.png" in report) == ("vector_map.png" in result.manifest["files"])
        return set(result.manifest["files"]) & {"vector_map.png"}, (result.path / "vector_map.png").exists()

    assert files() == (set(), False)                                                  # off by default
    assert files(vector_map=True) == ({"vector_map.png"}, True)                       # asked for
    assert files(item_attributes=str(sample_items)) == ({"vector_map.png"}, True)     # implied by attributes
    assert files(item_attributes=str(sample_items), vector_map=False) == (set(), False)


def test_flows_draw_the_map_by_default():
    import inspect

    from catvec.base.config import with_config_signature

    from catvec.pretraining.config import PretrainConfig

    @with_config_signature(PretrainConfig)
    def flow(**params):  # how flows/pretrain.py gets its parameters
        return params

    assert PretrainConfig().vector_map is None
    assert inspect.signature(flow).parameters["vector_map"].default is True

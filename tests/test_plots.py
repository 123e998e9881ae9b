"""Pictures: the vector map and the training curves are real PNGs, drawn from the data given."""

import numpy as np
import pytest

from catvec.base.errors import CatvecError
from catvec.reports.plots import pca_2d, plot_training_curves, plot_vector_map, read_item_attributes
from catvec.base.vectors import Vectors

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def clustered_vectors():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 4
    matrix = np.concatenate([c + rng.normal(size=(20, 16)) for c in centers])
    return Vectors([f"k{i}" for i in range(60)], matrix)


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_pca_separates_planted_clusters(clustered_vectors):
    coords, share = pca_2d(clustered_vectors.matrix)
    assert coords.shape == (60, 2) and 0 < share[1] <= share[0] <= 1
    means = [coords[i * 20:(i + 1) * 20].mean(axis=0) for i in range(3)]
    spread = max(coords[i * 20:(i + 1) * 20].std(axis=0).max() for i in range(3))
    gaps = [np.linalg.norm(means[a] - means[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert min(gaps) > 2 * spread
    again, _ = pca_2d(clustered_vectors.matrix.copy())
    assert np.allclose(coords, again)


def test_vector_map_with_attributes(clustered_vectors, tmp_path, write_csv):
    items = write_csv("items.csv", "item_id,genre\n" + "".join(f"k{i},g{i // 20}\n" for i in range(50)))
    attributes = read_item_attributes(items, "item_id", "")
    assert attributes["k0"] == "g0" and attributes["k45"] == "g2" and "k55" not in attributes
    path = plot_vector_map(clustered_vectors, tmp_path / "map.png", attributes=attributes, title="t")
    width, height = png_size(path)
    assert width > 600 and height > 500


def test_vector_map_without_attributes(clustered_vectors, tmp_path):
    assert png_size(plot_vector_map(clustered_vectors, tmp_path / "m.png"))[0] > 500


def test_item_attributes_errors(write_csv):
    path = write_csv("items.csv", "item_id,genre\n1,a\n")
    with pytest.raises(CatvecError, match="no column 'colour'"):
        read_item_attributes(path, "item_id", "colour")


def history(n, shift=0.0):
    return [{"epoch": e, "train_loss": 1 / e + shift, "val_loss": 1.2 / e + shift, "train_f1": 0.5 + e / 20,
             "val_f1": 0.45 + e / 25 - shift} for e in range(1, n + 1)]


def test_training_curves_pretrained_vs_scratch(tmp_path):
    metrics = {"history": history(6), "best_epoch": 5, "main_metric": "f1",
               "scratch": {"history": history(8, 0.1), "best_epoch": 8}}
    assert png_size(plot_training_curves(metrics, tmp_path / "c.png"))[0] > 800


def test_training_curves_single_run_and_missing_values(tmp_path):
    rows = history(4)
    del rows[0]["val_f1"]
    plot_training_curves({"history": rows, "main_metric": "f1"}, tmp_path / "c.png")
    with pytest.raises(CatvecError, match="history"):
        plot_training_curves({"history": []}, tmp_path / "d.png")


def test_pretrain_writes_map_and_report(tmp_path, sample_items):
    from catvec.base.config import PretrainConfig
    from catvec.pretraining.pipeline import pretrain

    result = pretrain(PretrainConfig(out=str(tmp_path), epochs=2, dim=8, exact=True, item_attributes=str(sample_items)))
    assert {"vector_map.png", "report.md"} <= set(result.manifest["files"])
    assert "![vector_map.png](vector_map.png)" in (result.path / "report.md").read_text()
    png_size(result.path / "vector_map.png")

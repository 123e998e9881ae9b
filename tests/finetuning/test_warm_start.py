"""`catvec finetune --warm-start MODEL`: continuing a model with new vectors, and scoring it
with other vectors swapped in (`--epochs 0`), through the real CLI."""

import json

import numpy as np
import polars as pl
import pytest

from catvec.base.vectors import Vectors, load_vectors, save_vectors
from catvec.cli.main import main
from catvec.finetuning.modeldir import load_model
from ftdata import item_vectors, write_inputs

FAST = ["--epochs", "4", "--batch-size", "64", "--hidden", "16", "--auto", "off"]


@pytest.fixture
def inputs(tmp_path):
    return write_inputs(tmp_path)


def train(inputs, out, *extra) -> int:
    """A first model on the multiclass target `segment` from item_id and x."""
    vectors_dir, table = inputs
    return main(["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "segment",
                 "--cat-cols", "item_id", "--cont-cols", "x", "--out", str(out), "--quiet", *FAST, *extra])


def warm(inputs, out, vectors_dir, model, *extra) -> int:
    """A warm start: roles and head come from the model; only the new vectors are named."""
    _, table = inputs
    return main(["finetune", "--warm-start", str(model), "--vectors", str(vectors_dir), "--table", str(table),
                 "--out", str(out), "--quiet", *extra])


def other_vectors(tmp_path, name: str, matrix: np.ndarray, keys=None) -> str:
    v1 = item_vectors()
    return str(save_vectors(Vectors(keys=keys or v1.keys, matrix=matrix.astype(np.float32)),
                            tmp_path / "vectors" / name, {"kind": "pretrain"}))


def rotation(dim: int, seed: int = 3) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))                                   # (dim, dim) orthogonal


def probabilities(model_dir, table) -> np.ndarray:
    from catvec.finetuning.predict import predict

    out = model_dir.parent / f"scored-{model_dir.name}.csv"
    predict(model_dir, table, out)
    frame = pl.read_csv(out)
    return frame.select(sorted(c for c in frame.columns if c.startswith("p_"))).to_numpy()   # (n, classes)


def latest_of(out):
    return (out / "latest").resolve()


def test_warm_start_copies_every_weight_before_training(tmp_path, inputs):
    models = tmp_path / "models"
    assert train(inputs, models) == 0
    first = latest_of(models)
    assert warm(inputs, models, inputs[0], first, "--epochs", "0") == 0
    second = latest_of(models)
    assert second != first
    old, new = load_model(first), load_model(second)
    old_state, new_state = old.model.state_dict(), new.model.state_dict()
    assert set(old_state) == set(new_state)
    for name, tensor in old_state.items():
        assert np.array_equal(tensor.numpy(), new_state[name].numpy()), name
    assert old.scaler.__dict__ == new.scaler.__dict__
    record = json.loads((second / "metrics.json").read_text())["warm_start"]
    assert record["from"] == first.name
    assert "head.weight" in record["copied"] and not any(n.startswith("embeddings.") for n in record["copied"])
    assert record["columns"]["item_id"]["offsets"] == "carried"      # finetune mode stored its starting rows
    manifest = json.loads((second / "manifest.json").read_text())
    assert manifest["warm_start"]["from"] == first.name
    assert manifest["params"]["hidden"] == "16" and manifest["params"]["target"] == "segment"


def test_fine_tuned_offsets_move_with_the_new_vectors_and_training_continues(tmp_path, inputs):
    models = tmp_path / "models"
    assert train(inputs, models, "--embedding-lr", "0.01") == 0
    first = latest_of(models)
    v1 = item_vectors()
    shifted = other_vectors(tmp_path, "shifted", v1.matrix + 0.5)
    assert warm(inputs, models, shifted, first, "--epochs", "0") == 0
    old, new = load_model(first).model.embedding_layers()["item_id"], \
        load_model(latest_of(models)).model.embedding_layers()["item_id"]
    # every row with a vector is the previous (fine-tuned) row moved by the vector's change
    assert np.allclose(new.full_weight().numpy()[1:], old.full_weight().numpy()[1:] + 0.5, atol=1e-5)
    assert np.array_equal(new.full_weight().numpy()[0], old.full_weight().numpy()[0])   # <unk> kept
    assert warm(inputs, models, shifted, first, "--epochs", "2") == 0
    metrics = json.loads((latest_of(models) / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [1, 2]
    assert metrics["warm_start"]["columns"]["item_id"]["moved"] == len(v1.keys)


def test_frozen_rows_become_the_new_vectors_new_keys_follow_the_oov_rules(tmp_path, inputs):
    models = tmp_path / "models"
    assert train(inputs, models, "--mode", "frozen") == 0
    first = latest_of(models)
    v1 = item_vectors()
    keys = v1.keys[:-5] + [f"new{i}" for i in range(5)]            # 5 keys dropped, 5 new
    swapped = other_vectors(tmp_path, "v2", v1.matrix * 2, keys=keys)
    assert warm(inputs, models, swapped, first, "--epochs", "0") == 0
    new = load_model(latest_of(models))
    rows = new.model.embedding_layers()["item_id"].full_weight().numpy()
    vocab = new.vocabs["item_id"]
    assert np.array_equal(rows[vocab.key_to_index[keys[0]]], v1.matrix[0] * 2)
    record = json.loads((latest_of(models) / "metrics.json").read_text())["warm_start"]["columns"]["item_id"]
    assert record["offsets"] == "fixed" and record["new_keys"] == 5
    # keys of the table without a new vector keep the previous model's row
    assert record["kept"] >= 1


def test_swapped_vectors_identical_rotated_and_aligned_back(tmp_path, inputs):
    """The model's predictions survive vectors in the same coordinates, not a rotation."""
    _, table = inputs
    models = tmp_path / "models"
    assert train(inputs, models, "--mode", "frozen") == 0
    first = latest_of(models)
    original = probabilities(first, table)
    v1 = item_vectors().matrix.astype(np.float64)
    rot = rotation(v1.shape[1])
    cases = {"same": v1, "rotated": v1 @ rot, "aligned": (v1 @ rot) @ rot.T}
    found = {}
    for name, matrix in cases.items():
        assert warm(inputs, models, other_vectors(tmp_path, name, matrix), first, "--epochs", "0") == 0
        found[name] = probabilities(latest_of(models), table)
    assert np.array_equal(found["same"], original)
    assert np.allclose(found["aligned"], original, atol=1e-4)
    assert np.abs(found["rotated"] - original).max() > 0.1
    assert (found["rotated"].argmax(axis=1) != original.argmax(axis=1)).mean() > 0.1


def test_epochs_zero_reports_the_metrics_of_the_model_as_it_is(tmp_path, inputs):
    models = tmp_path / "models"
    assert train(inputs, models, "--mode", "frozen") == 0
    first = latest_of(models)
    before = json.loads((first / "metrics.json").read_text())
    assert warm(inputs, models, inputs[0], first, "--epochs", "0") == 0
    after = json.loads((latest_of(models) / "metrics.json").read_text())
    assert after["best_epoch"] == 0 and len(after["history"]) == 1
    # same table, same split, same weights: the validation metrics of the best epoch again
    assert after["best"]["val_accuracy"] == pytest.approx(before["best"]["val_accuracy"])
    assert after["best"]["val_loss"] == pytest.approx(before["best"]["val_loss"], rel=1e-5)


def refused(capsys, out, code, *needles):
    """The run failed with one line naming what differs, and OUT kept its latest."""
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("case", ["dim", "columns", "target", "hidden"])
def test_a_model_that_does_not_fit_is_refused_and_latest_stays(tmp_path, inputs, capsys, case):
    models = tmp_path / "models"
    assert train(inputs, models) == 0
    first = latest_of(models)
    versions = sorted(p.name for p in models.iterdir())
    capsys.readouterr()
    vectors_dir, table = inputs
    if case == "dim":
        wide = other_vectors(tmp_path, "wide", np.hstack([item_vectors().matrix] * 2))
        code = warm(inputs, models, wide, first, "--epochs", "0")
        refused(capsys, models, code, str(first), "8-dimensional", "16")
    elif case == "columns":
        code = warm(inputs, models, vectors_dir, first, "--cat-cols", "item_id,color")
        refused(capsys, models, code, str(first), "categorical columns", "color")
    elif case == "target":
        code = warm(inputs, models, vectors_dir, first, "--target", "big")
        refused(capsys, models, code, str(first), "target")
    else:
        code = warm(inputs, models, vectors_dir, first, "--hidden", "32")
        refused(capsys, models, code, str(first), "hidden", "'16'")
    assert latest_of(models) == first
    assert sorted(p.name for p in models.iterdir()) == versions


def test_warm_start_from_a_missing_or_non_model_dir(tmp_path, inputs, capsys):
    vectors_dir, _ = inputs
    models = tmp_path / "models"
    code = warm(inputs, models, vectors_dir, tmp_path / "nowhere", "--epochs", "0")
    refused(capsys, models, code, "nowhere", "--warm-start")
    code = warm(inputs, models, vectors_dir, vectors_dir, "--epochs", "0")       # a weight dir, not a model
    refused(capsys, models, code, "not a catvec model")
    assert not (models / "latest").exists()


def test_epochs_zero_needs_a_warm_start(tmp_path, inputs, capsys):
    code = train(inputs, tmp_path / "models", "--epochs", "0")
    refused(capsys, tmp_path / "models", code, "--warm-start")


def test_swapped_vectors_load_back(tmp_path, inputs):
    """The swapped model's exported embedding is the new vectors (frozen model)."""
    models = tmp_path / "models"
    assert train(inputs, models, "--mode", "frozen") == 0
    first = latest_of(models)
    doubled = other_vectors(tmp_path, "doubled", item_vectors().matrix * 2)
    assert warm(inputs, models, doubled, first, "--epochs", "0") == 0
    exported = load_vectors(latest_of(models) / "embeddings" / "item_id")
    source = item_vectors()
    at = {k: i for i, k in enumerate(exported.keys)}
    assert np.array_equal(exported.matrix[at[source.keys[3]]], source.matrix[3] * 2)


def test_offsets_survive_a_chain_of_warm_starts_through_a_frozen_model(tmp_path, inputs):
    """finetune model -> frozen warm start on v + 0.5 -> warm start on v + 1: the first model's
    fine-tuned offsets are still there, since a warm-started model records its starting vectors."""
    models = tmp_path / "models"
    assert train(inputs, models, "--embedding-lr", "0.01") == 0
    first = latest_of(models)
    v1 = item_vectors()
    assert warm(inputs, models, other_vectors(tmp_path, "half", v1.matrix + 0.5), first,
                "--epochs", "0", "--mode", "frozen") == 0
    second = latest_of(models)
    assert warm(inputs, models, other_vectors(tmp_path, "one", v1.matrix + 1.0), second, "--epochs", "0") == 0
    rows = {m: load_model(m).model.embedding_layers()["item_id"].full_weight().numpy() for m in (first, latest_of(models))}
    assert np.allclose(rows[latest_of(models)][1:], rows[first][1:] + 1.0, atol=1e-5)
    record = json.loads((latest_of(models) / "metrics.json").read_text())["warm_start"]["columns"]["item_id"]
    assert record["offsets"] == "carried"

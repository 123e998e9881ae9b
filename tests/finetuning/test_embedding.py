"""PretrainedEmbedding modes: which rows move under AdamW, and the parameter groups."""

import numpy as np
import pytest
import torch

from catvec.finetuning.embedding import PretrainedEmbedding, build_optimizers, param_groups
from catvec.finetuning.model import TabularEmbeddingModel

N, DIM = 12, 4


@pytest.fixture
def matrix():
    return np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)


@pytest.fixture
def mask():
    m = np.ones(N, dtype=bool)
    m[[0, 5, 9]] = False      # <unk> and two OOV rows
    return m


def make_model(matrix, mask, mode, sparse=False):
    spec = {"columns": [{"name": "item", "num": N, "dim": DIM, "mode": mode}], "n_cont": 2, "out_dim": 1,
            "hidden": [8], "dropout": 0.0, "sparse": sparse}
    return TabularEmbeddingModel(spec, {"item": matrix}, {"item": mask}, seed=1)


def train_steps(model, steps=5, lr=0.05, embedding_lr=0.05, weight_decay=0.5, sparse=False):
    optimizers = build_optimizers(model, lr, embedding_lr, weight_decay, sparse)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x_cat = torch.randint(0, N, (16, 1), generator=gen)               # every row gets used
        x_cont = torch.randn(16, 2, generator=gen)
        loss = (model(x_cat, x_cont) - 1.0).pow(2).mean()
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in optimizers:
            opt.step()
    return optimizers


def rows(model):
    return model.embedding_layers()["item"].full_weight().numpy()


def test_frozen_rows_are_bit_identical_under_adamw_decay_and_momentum(matrix, mask):
    model = make_model(matrix, mask, "frozen")
    before = rows(model).copy()
    train_steps(model, steps=8)
    assert rows(model).tobytes() == before.tobytes()
    assert not any("embeddings" in n for n, _ in model.named_parameters())


def test_partial_trains_only_rows_without_a_pretrained_vector(matrix, mask):
    model = make_model(matrix, mask, "partial")
    before = rows(model).copy()
    train_steps(model, steps=8)
    after = rows(model)
    assert after[mask].tobytes() == before[mask].tobytes()
    assert not np.allclose(after[~mask], before[~mask])


def test_finetune_moves_rows_with_its_own_learning_rate(matrix, mask):
    model = make_model(matrix, mask, "finetune")
    groups = {g["name"]: g for g in param_groups(model, lr=0.01, embedding_lr=0.001, weight_decay=0.1)}
    assert groups["embedding"]["lr"] == 0.001 and groups["embedding"]["weight_decay"] == 0.0
    assert groups["decay"]["lr"] == 0.01 and groups["decay"]["weight_decay"] == 0.1
    before = rows(model).copy()
    train_steps(model)
    assert not np.allclose(rows(model), before)


def test_scratch_ignores_the_pretrained_matrix(matrix, mask):
    model = make_model(matrix, mask, "scratch")
    assert not np.allclose(rows(model), matrix)
    assert {g["name"] for g in param_groups(model, 0.01, 0.001, 0.0)} == {"decay", "no_decay", "embedding_new"}


@pytest.mark.parametrize("mode", ["frozen", "finetune", "partial", "scratch"])
def test_param_groups_partition_every_trainable_parameter(matrix, mask, mode):
    model = make_model(matrix, mask, mode)
    groups = param_groups(model, 0.01, 0.001, 0.1)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    biases = next(g for g in groups if g["name"] == "no_decay")
    assert all(n.endswith("bias") or "1." in n for n in biases["param_names"])  # biases and BatchNorm


def test_unfreeze_makes_every_row_trainable(matrix, mask):
    model = make_model(matrix, mask, "partial")
    assert model.unfreeze()
    assert model.spec["columns"][0]["mode"] == "finetune"
    before = rows(model).copy()
    np.testing.assert_array_equal(before, matrix)
    train_steps(model)
    assert not np.allclose(rows(model)[mask], before[mask])


def test_sparse_gradients_use_sparse_adam_and_keep_frozen_rows(matrix, mask):
    model = make_model(matrix, mask, "partial", sparse=True)
    before = rows(model).copy()
    optimizers = train_steps(model, sparse=True)
    assert [type(o).__name__ for o in optimizers] == ["AdamW", "SparseAdam"]
    after = rows(model)
    assert after[mask].tobytes() == before[mask].tobytes()
    assert not np.allclose(after[~mask], before[~mask])

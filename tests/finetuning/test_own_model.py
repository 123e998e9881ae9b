"""The public API for people's own models: catvec.embedding, catvec.param_groups, the example."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import catvec
from catvec.base.vectors import save_vectors
from ftdata import item_vectors

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def vectors_dir(tmp_path):
    return save_vectors(item_vectors(), tmp_path / "vectors" / "v1", {"kind": "pretrain"})


class Own(nn.Module):
    def __init__(self, emb):
        super().__init__()
        self.emb, self.head = emb, nn.Linear(emb.embedding_dim, 1)

    def forward(self, x):
        return self.head(self.emb(x)).squeeze(-1)


def train_steps(model, steps=5):
    opt = torch.optim.AdamW(catvec.param_groups(model, lr=0.1, embedding_lr=0.05, weight_decay=0.5))
    x = torch.arange(model.emb.num_embeddings)
    for _ in range(steps):
        loss = (model(x) - 1.0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_rows_follow_the_finetune_rules(vectors_dir):
    source = item_vectors()
    emb = catvec.embedding(vectors_dir, keys=["505", "new-item", "500"], mode="finetune", oov_init="mean")
    weight = emb.full_weight().numpy()
    assert weight.shape == (4, 8) and emb.vocab.index_to_key == ["<unk>", "505", "new-item", "500"]
    assert weight[1].tobytes() == source["505"].tobytes() and weight[3].tobytes() == source["500"].tobytes()
    np.testing.assert_allclose(weight[2], source.matrix.mean(axis=0), rtol=1e-6)   # OOV and <unk>: the mean
    np.testing.assert_allclose(weight[0], weight[2])
    assert (emb.report.hits, emb.report.misses) == (2, 2)
    assert emb.encode(["500", 505, None, "unseen"]).tolist() == [3, 1, 0, 0]


def test_context_vectors_can_start_your_own_model(vectors_dir):
    from catvec.base.scoring import unit_rows
    from catvec.base.vectors import Vectors

    source = item_vectors()
    with_context = Vectors(source.keys, source.matrix, context=source.matrix[::-1].copy())
    emb = catvec.embedding(with_context, keys=["505"], mode="frozen", pretrained_input="concat")
    weight = emb.full_weight().numpy()
    assert weight.shape == (2, 16)
    np.testing.assert_allclose(weight[1, 8:], unit_rows(with_context.context)[5], rtol=1e-6)
    with pytest.raises(catvec.CatvecError, match="needs context vectors"):
        catvec.embedding(vectors_dir, keys=["505"], pretrained_input="context")
    with pytest.raises(catvec.CatvecError, match="pretrained_input must be"):
        catvec.embedding(vectors_dir, keys=["505"], pretrained_input="both")


@pytest.mark.parametrize("mode", ["frozen", "partial"])
def test_frozen_rows_stay_bit_identical_in_your_own_model(vectors_dir, mode):
    emb = catvec.embedding(vectors_dir, keys=["500", "501", "nope"], mode=mode)
    before = emb.full_weight()
    model = Own(emb)
    train_steps(model)
    after = emb.full_weight()
    pretrained = emb.pretrained_mask
    assert torch.equal(after[pretrained], before[pretrained])
    assert mode == "frozen" or not torch.equal(after[~pretrained], before[~pretrained])


def test_param_groups_put_the_embedding_at_its_own_rate(vectors_dir):
    model = Own(catvec.embedding(vectors_dir, keys=["500", "501"], mode="finetune"))
    groups = {g["name"]: g for g in catvec.param_groups(model, lr=1e-3, embedding_lr=1e-4)}
    assert groups["embedding"]["lr"] == 1e-4 and groups["embedding"]["param_names"] == ["emb.weight"]
    assert groups["decay"]["lr"] == 1e-3
    # the README's promise: Linear weights decay by default, as much as catvec finetune's
    assert groups["decay"]["weight_decay"] == catvec.FinetuneConfig().weight_decay == 1e-4
    assert all(g["weight_decay"] == 0 for name, g in groups.items() if name != "decay")
    before = model.emb.full_weight()
    train_steps(model)
    assert not torch.equal(model.emb.full_weight(), before)


@pytest.mark.parametrize("keys,message", [(["500", 501], r"item 1 is 501 \(int\), not a string"),
                                          ("500", "got one string"),
                                          (["500", "500"], "'500' appears more than once"),
                                          (["<unk>"], "reserved for missing values")])
def test_bad_vocabularies_are_one_clear_error(vectors_dir, keys, message):
    with pytest.raises(catvec.CatvecError, match=message):
        catvec.embedding(vectors_dir, keys=keys)


def test_the_example_runs_on_freshly_pretrained_sample_vectors(tmp_path):
    cli = [sys.executable, "-m", "catvec.cli.main"]
    pre = subprocess.run([*cli, "pretrain", "--out", str(tmp_path / "artifacts"), "--epochs", "3", "--quiet"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert pre.returncode == 0, pre.stderr
    run = subprocess.run([sys.executable, str(REPO / "examples" / "own_model.py"), "--vectors",
                          str(tmp_path / "artifacts" / "latest"), "--epochs", "3"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "validation RMSE on held-out items" in run.stdout and "80 with a pretrained vector" in run.stdout


def test_the_example_without_vectors_says_what_to_do(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "examples" / "own_model.py"), "--vectors",
                          str(tmp_path / "none")], capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "run `make demo`" in run.stderr

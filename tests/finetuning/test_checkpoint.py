"""Checkpoints: safetensors + JSON round trip, no pickle, crash-safe replacement."""

import pickle

import pytest
import torch

from catvec.finetuning.checkpoint import INDEX, load_checkpoint, save_checkpoint
from catvec.base.errors import CatvecError


def optimizer_state():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.01)
    layer(torch.randn(4, 3)).sum().backward()
    opt.step()
    return layer, opt


def test_round_trip_model_and_optimizer(tmp_path):
    layer, opt = optimizer_state()
    state = {"epoch": 3, "model": layer.state_dict(), "optimizers": [opt.state_dict()],
             "history": [{"epoch": 1, "val_loss": 0.5, "auc": None}], "pair": (1, "a")}
    save_checkpoint(tmp_path, state, tag="epoch3")
    back = load_checkpoint(tmp_path)
    assert back["epoch"] == 3 and back["history"] == state["history"] and back["pair"] == (1, "a")
    for k, v in layer.state_dict().items():
        assert torch.equal(back["model"][k], v)
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    fresh.load_state_dict(back["optimizers"][0])  # int parameter ids survive JSON
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_replacing_keeps_one_tensor_file(tmp_path):
    save_checkpoint(tmp_path, {"x": torch.zeros(2)}, tag="epoch1")
    save_checkpoint(tmp_path, {"x": torch.ones(2)}, tag="epoch2")
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-epoch2.safetensors"]
    assert torch.equal(load_checkpoint(tmp_path)["x"], torch.ones(2))


def test_none_when_absent_and_pickle_refused(tmp_path):
    assert load_checkpoint(tmp_path) is None
    save_checkpoint(tmp_path, {"x": torch.zeros(2)}, tag="e1")
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "checkpoint-e1.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CatvecError, match="cannot be read"):
        load_checkpoint(tmp_path)
    assert not marker.exists()
    (tmp_path / INDEX).write_text("{not json")
    with pytest.raises(CatvecError, match="delete it to start over"):
        load_checkpoint(tmp_path)

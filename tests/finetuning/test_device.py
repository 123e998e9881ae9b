"""--device: one resolver, the CPU path, and a clear error for cuda without CUDA."""

import pytest
import torch

from catvec.base.errors import CatvecError
from catvec.cli.main import main
from catvec.finetuning.device import model_device, resolve_device
from catvec.finetuning.modeldir import load_model


def args(inputs, out, *extra):
    vectors_dir, table = inputs
    return ["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "y", "--out", str(out),
            "--quiet", "--epochs", "2", "--hidden", "16", "--auto", "off", *extra]


def test_auto_picks_cuda_only_when_torch_sees_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda" and resolve_device("cuda").type == "cuda"


def test_cuda_without_cuda_is_one_line_before_any_work(tmp_path, inputs, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CatvecError, match="torch sees no CUDA device"):
        resolve_device("cuda")
    assert main(args(inputs, tmp_path / "m", "--device", "cuda")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "use --device cpu or --device auto" in err
    assert not (tmp_path / "m").exists()


def test_cpu_training_hands_back_a_cpu_model(tmp_path, inputs):
    assert main(args(inputs, tmp_path / "m", "--device", "cpu")) == 0
    assert model_device(load_model(tmp_path / "m").model).type == "cpu"


def test_unknown_device_is_refused(tmp_path, inputs, capsys):
    try:
        code = main(args(inputs, tmp_path / "m", "--device", "tpu"))
    except SystemExit as exc:   # argparse refuses a value outside the field's choices
        code = exc.code
    assert code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err
    from catvec.base.config import build_config
    from catvec.finetuning.config import FinetuneConfig

    with pytest.raises(CatvecError, match="device must be one of auto, cpu, cuda; got 'tpu'"):  # TOML, flows
        build_config(FinetuneConfig, device="tpu")
    assert not (tmp_path / "m").exists()

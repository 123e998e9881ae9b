"""model.json's spec is checked against model.safetensors' tensor shapes (read from its
header) before anything is allocated; an edited spec is one line, not a 14 GB attempt."""

import hashlib
import json
from pathlib import Path

import pytest

from catvec.base.errors import CatvecError
from catvec.base.layout import COMPLETE, MANIFEST
from catvec.cli.main import main
from catvec.finetuning import model as model_module
from catvec.finetuning.model import TabularEmbeddingModel
from catvec.finetuning.modeldir import load_model, tensor_shapes


def test_state_shapes_match_a_built_model():
    import numpy as np

    spec = {"columns": [{"name": "a.b", "num": 7, "dim": 4, "mode": "frozen"},
                        {"name": "c", "num": 5, "dim": 4, "mode": "finetune"},
                        {"name": "d", "num": 6, "dim": 3, "mode": "partial"},
                        {"name": "e", "num": 4, "dim": 2, "mode": "scratch"}],
            "n_cont": 2, "out_dim": 3, "hidden": [8, 5], "dropout": 0.1, "interactions": True}
    mask = np.array([False, True, True, False, True, True])
    model = TabularEmbeddingModel(spec, masks={"d": mask})
    built = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = TabularEmbeddingModel.state_shapes(spec)
    assert set(built) == set(expected)
    for name, shape in expected.items():
        assert len(shape) == len(built[name]) and all(e in (None, b) for e, b in zip(shape, built[name])), name
    assert built["embeddings.c_d.new_rows"] == (2, 3)


def edit_spec(model_dir: Path, change) -> Path:
    """Change model.json's spec and make the manifest and COMPLETE agree: only the spec check can tell."""
    path = model_dir / "model.json"
    info = json.loads(path.read_text())
    change(info["spec"])
    path.write_text(json.dumps(info))
    manifest = json.loads((model_dir / MANIFEST).read_text())
    manifest["files"]["model.json"] = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    (model_dir / COMPLETE).write_text("sha256:" + hashlib.sha256((model_dir / MANIFEST).read_bytes()).hexdigest())
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from ftdata import write_inputs

    root = tmp_path_factory.mktemp("spec")
    vectors_dir, table = write_inputs(root)
    out = root / "models"
    assert main(["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "y", "--out", str(out),
                 "--quiet", "--epochs", "1", "--auto", "off", "--hidden", "16"]) == 0
    return out, table


@pytest.mark.parametrize("case, change, message", [
    ("huge hidden layer", lambda s: s.update(hidden=[10_000_000]), "hidden layer sizes [10000000] must be"),
    ("other hidden size", lambda s: s.update(hidden=[64]), "the spec gives mlp.0.weight the shape (64,"),
    ("one more layer", lambda s: s.update(hidden=[16, 16]), "the spec gives mlp.4.weight"),
    ("bigger embedding", lambda s: s["columns"][0].update(num=s["columns"][0]["num"] * 1000), "model.safetensors has ("),
    ("mode changed", lambda s: s["columns"][0].update(mode="frozen" if s["columns"][0]["mode"] != "frozen" else "finetune"),
     "no such tensor"),
    ("text size", lambda s: s.update(out_dim="1"), "out_dim must be integers"),
])
def test_an_edited_spec_is_refused_before_allocation(tmp_path, trained, monkeypatch, capsys, case, change, message):
    import shutil

    out, table = trained
    copy = tmp_path / "models"
    shutil.copytree(out, copy, symlinks=True)
    path = edit_spec(copy / "latest", change)

    def never(*args, **kwargs):
        raise AssertionError("the model was built from an unchecked spec")

    monkeypatch.setattr(model_module.TabularEmbeddingModel, "from_state", classmethod(never))
    with pytest.raises(CatvecError) as info:
        load_model(copy)
    assert str(path) in str(info.value) and message in str(info.value) and "\n" not in str(info.value)
    capsys.readouterr()
    assert main(["predict", "--model", str(copy), "--table", str(table), "--out", str(tmp_path / "p.csv")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "p.csv").exists()


def test_the_untouched_model_loads(trained):
    out, _ = trained
    loaded = load_model(out)
    assert set(tensor_shapes(loaded.path / "model.safetensors")) == set(loaded.model.state_dict())

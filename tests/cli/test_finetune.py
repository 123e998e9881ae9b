"""`catvec finetune` and `catvec predict` through the real CLI, checked with the library loaders."""

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from catvec.cli.main import main
from catvec.finetuning.modeldir import load_model
from catvec.base.vectors import load_vectors
from ftdata import labeled_rows, write_inputs

FAST = ["--epochs", "3", "--batch-size", "64", "--hidden", "16"]


@pytest.fixture
def inputs(tmp_path):
    return write_inputs(tmp_path)


def finetune_args(inputs, out, *extra):
    vectors_dir, table = inputs
    return ["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "y",
            "--out", str(out), "--quiet", *FAST, *extra]


def test_finetune_compare_then_predict_end_to_end(tmp_path, inputs):
    out = tmp_path / "models"
    run = subprocess.run([sys.executable, "-m", "catvec.cli.main", *finetune_args(inputs, out, "--compare",
                          "--cat-cols", "item_id,color")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    version = run.stdout.strip().splitlines()[-1]
    assert (out / "latest").resolve() == (out / version.split("/")[-1]).resolve()
    loaded = load_model(out)
    assert loaded.roles.pretrained == {"item_id": str(inputs[0])}
    assert loaded.roles.cont_cols == ["x"]
    metrics = json.loads((out / "latest" / "metrics.json").read_text())
    assert metrics["main_metric"] == "val_rmse" and len(metrics["history"]) == 3
    assert metrics["scratch"]["mode"] == "scratch" and len(metrics["scratch"]["history"]) == 3
    assert metrics["comparison"]["better"] in ("pretrained", "scratch", "tie")
    alignment = json.loads((out / "latest" / "alignment.json").read_text())
    assert alignment["item_id"]["hits"] == 60
    exported = load_vectors(out / "latest" / "embeddings" / "item_id")
    assert len(exported) == 60 and exported.dim == 8          # every pretrained key, <unk> left out
    assert "## Alignment" in (out / "latest" / "report.md").read_text()
    manifest = json.loads((out / "latest" / "manifest.json").read_text())
    assert (manifest["format"], manifest["format_version"], manifest["kind"]) == ("catvec-model", 1, "finetune")
    # a fine-tuned pretrained column also keeps the rows it started from
    started = ["initial.safetensors"] if metrics["mode"] == "finetune" else []
    # a regression target: the per-key statistics of the training rows go with the model, and
    # after the --auto search the blend of its best candidates (when it changes anything)
    blended = ["blend.safetensors"] if "blend.safetensors" in manifest["files"] else []
    assert blended or metrics["auto"]["blend"]["weight"] == 0
    assert sorted(manifest["files"]) == sorted(["model.safetensors", "model.json", "vocabs.json", "metrics.json", "training_curves.png",
                                                "alignment.json", "report.md", "keystats.safetensors", *started,
                                                *blended])
    assert manifest["embeddings"] == {"item_id": "embeddings/item_id", "color": "embeddings/color"}

    new = labeled_rows(20, seed=9).drop(columns=["y"])
    new.loc[0, "item_id"] = 999999                              # never seen: goes to <unk>
    new.loc[1, "color"] = "purple"
    new_path = tmp_path / "new.csv"
    new.to_csv(new_path, index=False)
    for name in ("scored.csv", "scored.parquet"):
        assert main(["predict", "--model", str(out), "--table", str(new_path), "--out", str(tmp_path / name),
                     "--quiet"]) == 0
    scored = pl.read_csv(tmp_path / "scored.csv")
    assert scored.height == 20 and scored["prediction"].is_finite().all()
    np.testing.assert_allclose(pl.read_parquet(tmp_path / "scored.parquet")["prediction"].to_numpy(),
                               scored["prediction"].to_numpy(), rtol=1e-9)


def test_inferred_roles_are_printed(tmp_path, inputs, capsys):
    vectors_dir, table = inputs
    frame = pl.read_csv(table).drop("segment", "big")
    frame.write_csv(tmp_path / "plain.csv")
    assert main(["finetune", "--vectors", str(vectors_dir), "--table", str(tmp_path / "plain.csv"),
                 "--target", "y", "--out", str(tmp_path / "m"), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "categorical: item_id, color; continuous: x" in printed
    assert f"pretrained: item_id <- {vectors_dir}" in printed


def test_help_has_an_example(capsys):
    for command in ("finetune", "predict"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert f"catvec {command} --" in text
        if command == "finetune":
            assert "--embedding-lr" in text and "--compare" in text and "--resume" in text


def bad_table(tmp_path, edit):
    frame = labeled_rows(60)
    frame = edit(frame)
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def _set(frame, col, row, value):
    frame[col] = frame[col].astype(object)
    frame.loc[row, col] = value
    return frame


BAD_TABLES = {
    "target missing": (lambda f: f.drop(columns=["y"]), [], "no target column 'y'"),
    "target constant": (lambda f: f.assign(y=1.5), [], "target 'y' is constant"),
    "one class": (lambda f: f.assign(segment="s1"), ["--target", "segment"], "single class ('s1')"),
    "non-numeric": (lambda f: _set(f, "x", 4, "abc"), [], "column 'x' must be numeric but row 5 holds 'abc'"),
    "nan feature": (lambda f: _set(f, "x", 2, None), [], "column 'x' has 1 empty or NaN value(s) (first at row 3)"),
    "empty table": (lambda f: f.iloc[:0], [], "the table has no rows"),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_tables_fail_cleanly_and_leave_earlier_results_alone(tmp_path, inputs, capsys, case):
    edit, extra, message = BAD_TABLES[case]
    out = tmp_path / "models"
    assert main(finetune_args(inputs, out, "--cat-cols", "item_id,color", "--cont-cols", "x")) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".checkpoints" not in p.parts}
    latest = (out / "latest").resolve()
    capsys.readouterr()
    args = finetune_args(inputs, out, "--cat-cols", "item_id,color", *extra)
    args[args.index("--table") + 1] = str(bad_table(tmp_path, edit))
    if case not in ("target missing",):
        args += ["--cont-cols", "x"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (out / "latest").resolve() == latest
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".checkpoints" not in p.parts} == before


def test_weight_file_from_another_format_version(tmp_path, inputs, capsys):
    from catvec.base.layout import MANIFEST
    from catvec.base.manifest import finish_manifest

    vectors_dir = inputs[0]
    manifest = json.loads((vectors_dir / MANIFEST).read_text())
    files = list(manifest.pop("files"))
    finish_manifest(vectors_dir, {**manifest, "format_version": 99}, files)
    assert main(finetune_args(inputs, tmp_path / "m")) == 2
    assert "format version 99 is newer than this catvec reads" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").glob("2*"))


@pytest.mark.parametrize("flag,value,message", [("--lr", "-1", "lr must be > 0"),
                                                ("--embedding-lr", "0", "embedding_lr must be > 0"),
                                                ("--mode", "thawed", "invalid choice: 'thawed'"),   # argparse reads the choices
                                                ("--val-fraction", "1.5", "val_fraction must be between 0 and 1")])
def test_bad_options_are_refused_before_any_work(tmp_path, inputs, capsys, flag, value, message):
    try:
        code = main(finetune_args(inputs, tmp_path / "m", flag, value))
    except SystemExit as exc:   # argparse refuses a value outside a field's choices
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_dimension_override_mismatch_and_zero_overlap(tmp_path, inputs, capsys):
    assert main(finetune_args(inputs, tmp_path / "m", "--emb-dims", "item_id=16")) == 2
    assert "8-dimensional vectors but an embedding size of 16" in capsys.readouterr().err
    assert main(finetune_args(inputs, tmp_path / "m", "--pretrained-cols", "color")) == 2
    assert "none of its 3 values has a pretrained vector" in capsys.readouterr().err


def test_predict_refuses_a_table_without_a_feature_column(tmp_path, inputs, capsys):
    out = tmp_path / "models"
    assert main(finetune_args(inputs, out, "--cat-cols", "item_id,color", "--cont-cols", "x")) == 0
    path = tmp_path / "new.csv"
    labeled_rows(10).drop(columns=["color"]).to_csv(path, index=False)
    assert main(["predict", "--model", str(out), "--table", str(path), "--out", str(tmp_path / "s.csv")]) == 2
    assert "no feature column 'color'" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


def test_toml_config_with_a_flag_overriding_it(tmp_path, inputs):
    vectors_dir, table = inputs
    config = tmp_path / "finetune.toml"
    config.write_text(f'[finetune]\nvectors = "{vectors_dir}"\ntable = "{table}"\ntarget = "y"\n'
                      f'cat_cols = "item_id"\ncont_cols = "x"\nmode = "frozen"\nepochs = 5\nhidden = "8"\n')
    out = tmp_path / "m"
    assert main(["finetune", "--config", str(config), "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "latest" / "metrics.json").read_text())
    assert metrics["mode"] == "frozen" and len(metrics["history"]) == 2
    assert load_model(out).roles.cat_cols == ["item_id"]


def test_models_cannot_be_written_over_the_pretrained_vectors(tmp_path, inputs, capsys):
    vectors_root = inputs[0].parent
    assert main(finetune_args(inputs, vectors_root)) == 2
    assert "holds the pretrained vectors" in capsys.readouterr().err
    assert sorted(p.name for p in vectors_root.iterdir()) == ["v1"]


def test_pretrained_input_concat_starts_from_input_and_context_side_by_side(tmp_path, inputs, capsys):
    import numpy as np

    from catvec.base.scoring import unit_rows
    from catvec.base.vectors import Vectors, load_vectors, save_vectors
    from catvec.finetuning.align import pretrained_input

    vectors_dir, table = inputs
    old = load_vectors(vectors_dir)
    # a version without context vectors refuses context and concat in one line, before any work
    assert main(finetune_args(inputs, tmp_path / "m0", "--pretrained-input", "concat")) == 2
    assert "needs context vectors" in capsys.readouterr().err and not (tmp_path / "m0").exists()
    with_context = Vectors(old.keys, old.matrix, context=old.matrix[::-1].copy())
    save_vectors(with_context, tmp_path / "ctx" / "v1")
    both = pretrained_input(with_context, "concat", "v1")
    assert both.dim == 2 * old.dim
    assert np.allclose(both.matrix[:, old.dim:], unit_rows(with_context.context))
    assert np.array_equal(pretrained_input(with_context, "context", "v1").matrix, with_context.context)
    args = ["finetune", "--vectors", str(tmp_path / "ctx" / "v1"), "--table", str(table), "--target", "y",
            "--out", str(tmp_path / "m1"), "--quiet", *FAST, "--pretrained-input", "concat", "--auto", "off"]
    assert main(args) == 0
    alignment = json.loads((tmp_path / "m1" / "latest" / "alignment.json").read_text())
    assert alignment["item_id"]["dim"] == 2 * old.dim

"""The catalogue, continued: every source obeys the same input rules, every command checks
its output path before any work, and no command takes an option it ignores."""

import os
import re
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from catvec.base.errors import CatvecError
from catvec.cli.main import build_parser, main
from catvec.pretraining.config import EventOptions
from catvec.pretraining.events import read_events
from ftdata import write_inputs

FAST = ["--epochs", "2", "--dim", "8", "--exact", "-q"]
IDS = [595.0, 7.0, 595.0, 7.0]


def events_frame(items=IDS, times=(1, 2, 1, 2)):
    return pd.DataFrame({"user_id": ["u", "u", "v", "v"], "item_id": items, "timestamp": list(times)})


def csv_text(frame) -> str:
    return frame.to_csv(index=False)  # pandas writes a float column as 595.0


SOURCES = {
    "csv written from floats": lambda d: _write(d / "e.csv", csv_text(events_frame())),
    "tsv written from floats": lambda d: _write(d / "e.tsv", csv_text(events_frame()).replace(",", "\t")),
    "parquet float column": lambda d: _parquet(events_frame(), d / "e.parquet"),
    "parquet folder of parts": lambda d: _folder(events_frame(), d / "parts"),
    "pandas float DataFrame": lambda d: events_frame(),
    "polars float DataFrame": lambda d: pl.from_pandas(events_frame()),
    "pandas object DataFrame": lambda d: events_frame(items=["595.0", 7, 595, "7"]),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _parquet(frame, path: Path) -> Path:
    frame.to_parquet(path)
    return path


def _folder(frame, folder: Path) -> Path:
    folder.mkdir()
    frame.iloc[:2].to_parquet(folder / "part-0.parquet")
    frame.iloc[2:].to_parquet(folder / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")  # writers' markers are not parts
    return folder


@pytest.mark.parametrize("source", list(SOURCES))
def test_integral_float_ids_give_one_key_whatever_the_source(tmp_path, source):
    table = read_events(SOURCES[source](tmp_path))
    assert table.frame["item"].to_list() == ["595", "7", "595", "7"]
    assert table.frame["t"].to_list() == [1_000_000, 2_000_000, 1_000_000, 2_000_000]


@pytest.mark.parametrize("source", ["csv", "parquet", "DataFrame"])
def test_ambiguous_times_refused_and_read_with_a_format_whatever_the_source(tmp_path, source):
    frame = events_frame(times=["01/02/2024", "03/02/2024"] * 2)
    made = {"csv": lambda: _write(tmp_path / "e.csv", csv_text(frame)),
            "parquet": lambda: _parquet(frame, tmp_path / "e.parquet"), "DataFrame": lambda: frame}[source]()
    with pytest.raises(CatvecError, match=r"not ISO-8601, e.g. '01/02/2024'.*--time-format"):
        read_events(made)
    t = read_events(made, EventOptions(time_format="%d/%m/%Y")).frame["t"].to_list()
    assert t[0] == 1_706_745_600_000_000  # 2024-02-01T00:00:00Z: day first, as the format says


def test_parquet_folder_parts_must_agree(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    events_frame().to_parquet(folder / "a.parquet")
    events_frame().rename(columns={"item_id": "item"}).to_parquet(folder / "b.parquet")
    with pytest.raises(CatvecError, match="cannot read the events as a Parquet folder"):
        read_events(folder)


# ---- every output path is checked before any work starts --------------------------------

@pytest.fixture(scope="module")
def made(tmp_path_factory, sample_events):
    root = tmp_path_factory.mktemp("outputs")
    vectors_dir, table = write_inputs(root, n=120)
    assert main(["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "y",
                 "--out", str(root / "models"), "--epochs", "1", "--exact", "-q"]) == 0
    return {"V": str(vectors_dir), "T": str(table), "M": str(root / "models"), "E": str(sample_events)}


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A directory nothing can be written into (the permission bits, and os.access for root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    real = os.access

    def access(path, mode, *args, **kwargs):
        inside = Path(path).resolve() == ro.resolve() or ro.resolve() in Path(path).resolve().parents
        return False if inside and mode & os.W_OK else real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    yield ro
    ro.chmod(0o755)


OUTPUTS = {
    "pretrain --out": "pretrain --events {E} --out {RO}/vectors --epochs 1",
    "finetune --out": "finetune --vectors {V} --table {T} --target y --out {RO}/models --epochs 1",
    "export word2vec --out": "export --vectors {V} --format word2vec --out {RO}/items.w2v.txt",
    "export projector --out": "export --vectors {V} --format projector --out {RO}/projector",
    "predict --out": "predict --model {M} --table {T} --out {RO}/scored.csv",
    "tune --write": "tune --events {E} --trials 2 --epochs 1 --write {RO}/tuned.toml",
    "recommend --out": "recommend --vectors {V} --events {E} --out {RO}/recs.csv",
}


@pytest.mark.parametrize("case", list(OUTPUTS))
def test_unwritable_output_refused_before_work(made, read_only, capsys, monkeypatch, case):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")

    for target in ("catvec.pretraining.tune.run_trial", "catvec.pretraining.skipgram.train_vectors",
                   "catvec.finetuning.training.fit", "catvec.base.vectors.load_vectors",
                   "catvec.finetuning.modeldir.load_model"):
        monkeypatch.setattr(target, no_work)
    argv = OUTPUTS[case].format(RO=read_only, **made).split()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("catvec: error:"), err
    assert str(read_only) in err and "permission denied" in err and "choose another" in err
    assert list(read_only.iterdir()) == []


def test_a_table_too_small_to_train_refused(made, tmp_path, capsys):
    (tmp_path / "two.csv").write_text("item_id,x,y\n500,1.0,2.0\n501,2.0,3.0\n")
    assert main(["finetune", "--vectors", made["V"], "--table", str(tmp_path / "two.csv"), "--target", "y",
                 "--out", str(tmp_path / "m")]) == 2
    assert "the split leaves 1 training row; a model needs at least 2" in capsys.readouterr().err


def test_output_that_is_a_directory_refused(made, tmp_path, capsys):
    assert main(["predict", "--model", made["M"], "--table", made["T"], "--out", str(tmp_path)]) == 2
    assert "use a .csv or .parquet file name" in capsys.readouterr().err
    (tmp_path / "d.csv").mkdir()
    assert main(["predict", "--model", made["M"], "--table", made["T"], "--out", str(tmp_path / "d.csv")]) == 2
    assert "is a directory; pass a file name" in capsys.readouterr().err


# ---- no option accepted and ignored -------------------------------------------------------

def commands():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


@pytest.mark.parametrize("flag", ["--out", "--item-attributes", "--attribute-col", "--strict", "--holdout"])
def test_tune_takes_no_option_it_would_ignore(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", flag, "x"])
    assert exit_info.value.code == 2
    assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(commands()))
def test_help_has_one_options_section(name):
    text = commands()[name].format_help()
    assert len(re.findall(r"^options:$", text, re.M)) == 1


def test_similar_and_evaluate_share_k_and_topn_still_works(made, capsys):
    main(["similar", "--vectors", made["V"], "--k", "3", "500"])
    with_k = capsys.readouterr().out
    main(["similar", "--vectors", made["V"], "--topn", "3", "500"])
    assert capsys.readouterr().out == with_k and with_k.count("\n") == 4
    assert "--k" in commands()["evaluate"].format_help()


def test_readme_states_the_catalogue_size():
    import subprocess
    import sys

    from conftest import REPO

    files = ["tests/scenarios/test_catalogue.py", "tests/scenarios/test_catalogue_commands.py"]
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-k", "not readme_states", *files],
                         cwd=REPO, capture_output=True, text=True)
    count = int(re.search(r"(\d+)(?:/\d+)? tests? collected", run.stdout).group(1))
    assert f"catalogue of {count} awkward inputs" in (REPO / "README.md").read_text(encoding="utf-8")

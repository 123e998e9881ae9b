"""catvec pretrain end to end: the real CLI, the sample, exact mode, bad input."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catvec.cli.main import main
from catvec.pretraining.config import PretrainConfig
from catvec.pretraining.pipeline import pretrain
from catvec.base.manifest import read_manifest
from catvec.base.vectors import load_vectors

FAST = ["--epochs", "3", "--dim", "16", "--exact"]


def run_cli(*argv):
    return main([str(a) for a in argv])


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".cache" not in p.parts}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "artifacts"
    assert run_cli("pretrain", "--out", out, "--quiet") == 0
    return out


def test_sample_planted_clusters_are_neighbours(sample_run):
    vectors = load_vectors(sample_run / "latest")
    assert len(vectors) == 200 and vectors.dim == 64
    hits = 0
    for key in ("1001", "1030", "1060", "1110", "1190"):
        cluster = (int(key) - 1000) // 25
        top = [k for k, _ in vectors.most_similar(key, topn=10)]
        hits += sum((int(k) - 1000) // 25 == cluster for k in top)
    assert hits >= 45  # at least 9 of 10 neighbours from the planted cluster, on average


def test_manifest_records_everything(sample_run):
    manifest = read_manifest(sample_run / "latest")
    assert manifest["kind"] == "pretrain" and manifest["parent"] is None
    assert set(manifest["libraries"]) >= {"catvec", "gensim", "numpy"}
    assert manifest["params"] == {**manifest["params"], "dim": 64, "seed": 1}
    # nothing was given: the settings were chosen on a validation split and are recorded
    assert manifest["tuning"]["ran"] and manifest["params"]["window"] in (5, 10, 30)
    assert manifest["scoring"]["scorer"] in ("cosine", "context") and manifest["params"]["epochs"] >= 5
    assert manifest["input"]["checksum"].startswith("sha256:")
    corpus = manifest["corpus"]
    assert corpus["events_read"] == 7740 and corpus["vocab_size"] == 200
    assert corpus["tokens"] + corpus["events_dropped"] == corpus["events_read"]
    epochs = manifest["training"]["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, manifest["params"]["epochs"] + 1))
    assert epochs[-1]["loss"] < epochs[0]["loss"]


def test_second_run_has_parent_and_uses_cache(sample_run):
    first = read_manifest(sample_run / "latest")["version"]
    # another --dim than the parent: the gate cannot compare, --force publishes anyway
    assert run_cli("pretrain", "--out", sample_run, "--quiet", "--force", *FAST) == 0
    manifest = read_manifest(sample_run / "latest")
    assert manifest["parent"] == first and manifest["version"] != first
    assert manifest["gate"]["forced"] and "dimension 16 differs" in manifest["gate"]["reasons"][0]
    assert manifest["timings"]["corpus_cached"] is True
    assert (sample_run / first / "COMPLETE").exists()


def test_exact_mode_identical_across_processes(tmp_path):
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-m", "catvec.cli.main", "pretrain", "--out", str(tmp_path / name), "-q", *FAST],
                       check=True, capture_output=True)
    for file in ("vectors.safetensors", "keys.json"):
        assert (tmp_path / "a/latest" / file).read_bytes() == (tmp_path / "b/latest" / file).read_bytes()


def test_dataframe_input_and_config_precedence(tmp_path, clustered_events):
    cfg = PretrainConfig(out=str(tmp_path / "o"), dim=8, epochs=20, exact=True, window=3)
    result = pretrain(cfg, events=clustered_events)
    vectors = load_vectors(result.path)
    assert result.manifest["input"]["path"] == "<DataFrame>"
    top = [k for k, _ in vectors.most_similar("c2_0", topn=5)]
    assert sum(k.startswith("c2_") for k in top) >= 4


def test_toml_config_and_flag_override(tmp_path, sample_events):
    toml = tmp_path / "p.toml"
    toml.write_text('dim = 8\nepochs = 2\nexact = true\nsession_gap = "30m"\n')
    assert run_cli("pretrain", "--config", toml, "--dim", "12", "--out", tmp_path / "o", "-q") == 0
    params = read_manifest(tmp_path / "o")["params"]
    assert (params["dim"], params["epochs"], params["session_gap"]) == (12, 2, "30m")


def test_basket_mode_uses_whole_basket_window(tmp_path, write_csv):
    rows = ["order_id,item_id"] + [f"o{i},{k}" for i in range(60) for k in ("a", "b", "c", "d", "e", "f", "g", "h")]
    path = write_csv("b.csv", "\n".join(rows) + "\n")
    assert run_cli("pretrain", "--events", path, "--basket-col", "order_id", "--window", "2", "--out",
                   tmp_path / "o", "-q", *FAST) == 0
    training = read_manifest(tmp_path / "o")["training"]
    assert training["window_used"] == 8 and training["shrink_windows"] is False


def test_exports(tmp_path, sample_events):
    assert run_cli("pretrain", "--export", "word2vec,projector", "--out", tmp_path / "o", "-q", *FAST) == 0
    version = tmp_path / "o" / "latest"
    assert {"vectors.w2v.txt", "vectors.tsv", "metadata.tsv"} <= {p.name for p in version.iterdir()}
    assert run_cli("export", "--vectors", tmp_path / "o", "--format", "word2vec", "--out", tmp_path / "x.txt") == 0
    assert (tmp_path / "x.txt").read_text().splitlines()[0] == "200 16"


def test_similar_command(sample_run, capsys):
    assert run_cli("similar", "--vectors", sample_run, "--topn", "3", "1001") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1001 (") and "seen" in out[0] and len(out) == 4


def test_progress_and_summary_printed(tmp_path, capsys):
    assert run_cli("pretrain", "--out", tmp_path / "o", *FAST) == 0
    captured = capsys.readouterr()
    assert "epoch 3/3" in captured.err
    assert "events read 7740" in captured.out


BAD_INPUTS = [
    # (file name, content, extra args, expected message fragment)
    ("missing.csv", None, [], "not found"),
    ("e.json", "{}", [], "unknown format '.json'"),
    ("e.csv", "", [], "the file is empty"),
    ("e.csv", "user_id,item_id,timestamp\n", [], "no events"),
    ("e.csv", "user,item_id,timestamp\nu,1,1\n", [], "no column 'user_id'"),
    ("e.csv", "user_id,item_id,timestamp\nu,1,1\nu,2,x\n", [], "column 'timestamp' mixes numbers and dates"),
    ("e.csv", "user_id,item_id,timestamp\nu,1,2024-01-01\nu,2,x\n", [], "not ISO-8601, e.g. 'x'"),
    ("e.csv", "user_id,item_id,timestamp\n,1,1\nu,2,2\n", [], "column 'user_id' has 1 empty"),
    ("e.csv", "user_id,item_id,timestamp\nu,,1\nu,2,2\n", [], "column 'item_id' has 1 empty"),
    ("e.csv", "user_id,item_id,timestamp\nu,1,1\nv,2,2\n", [], "every event was dropped by the filters"),
    ("e.csv", "user_id,item_id,timestamp\nu,1,1\nu,2,2\n", ["--min-count", "5"], "every event was dropped"),
    ("e.csv", "user_id,item_id,timestamp\nu,1,1\nu,2,2\n", ["--dim", "0"], "dim must be >= 1"),
    ("e.csv", "user_id,item_id,timestamp\nu,1,1\nu,2,2\n", ["--alpha", "-0.1"], "alpha must be"),
    ("e.csv", "user_id,item_id,timestamp\nu,1,1\nu,2,2\n", ["--session-gap", "soon"], "session_gap"),
]


@pytest.mark.parametrize("name, content, extra, message", BAD_INPUTS)
def test_bad_input_one_line_and_latest_untouched(sample_run, tmp_path, capsys, name, content, extra, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    before = tree_digest(sample_run)
    code = run_cli("pretrain", "--events", path, "--out", sample_run, "-q", *extra)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and err.startswith("catvec: error:") and "\n" not in err and "Traceback" not in err
    assert tree_digest(sample_run) == before


def test_bad_toml(tmp_path, capsys):
    toml = tmp_path / "p.toml"
    toml.write_text("dimm = 8\n")
    assert run_cli("pretrain", "--config", toml, "--out", tmp_path / "o") == 2
    assert "unknown key 'dimm' (did you mean 'dim'?)" in capsys.readouterr().err
    toml.write_text('epochs = "ten"\n')
    assert run_cli("pretrain", "--config", toml, "--out", tmp_path / "o") == 2
    assert "epochs must be an integer" in capsys.readouterr().err
    assert not (tmp_path / "o" / "latest").exists()


def test_real_command_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "catvec.cli.main", "pretrain", "--events", str(tmp_path / "nope.csv")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("catvec: error: events file") and "Traceback" not in proc.stderr


def test_import_and_help_stay_light():
    code = ("import sys, catvec, catvec.cli.main; catvec.cli.main.build_parser().format_help();"
            "print(sorted(m for m in ('torch','gensim','prefect','polars','pandas','dask','matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_pretrain_loads_no_heavy_library_it_does_not_use(tmp_path, sample_events):
    """A pretrain run (the CLI in a fresh process) trains with gensim and polars only: torch,
    prefect, dask, pandas and matplotlib (the map is off by default) stay unloaded."""
    code = ("import sys; from catvec.cli.main import main;"
            f"rc = main(['pretrain', '--events', {str(sample_events)!r}, '--out', {str(tmp_path)!r}, '--no-tune',"
            "'--epochs', '1', '--dim', '8', '--exact', '--quiet']);"
            "print(rc, sorted(m for m in ('torch','prefect','dask','pandas','matplotlib','gensim','polars') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 ['gensim', 'polars']"
    assert (tmp_path / "latest" / "vectors.safetensors").is_file()
    assert not (tmp_path / "latest" / "vector_map.png").exists()

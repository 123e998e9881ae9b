"""The pretrain flow: same parameters and same vectors as the CLI, retries only where the
input may be late, a bad config fails at once, a failed run publishes nothing."""

import dataclasses
import functools
import shutil
from pathlib import Path

import pytest

from catvec.pretraining import pipeline
from catvec.cli.main import main as catvec_main
from catvec.base.config import PretrainConfig, field_types
from catvec.base.store import LATEST, STAGING
from catvec.base.store import read_manifest
from catvec.base.vectors import load_vectors

FAST = dict(dim=8, epochs=2, exact=True, vector_map=False)


def replace_step(monkeypatch, name, body):
    """Swap pipeline.<name> for body(real, *args), keeping the step's name (which picks its task)."""
    real = getattr(pipeline, name)

    @functools.wraps(real)
    def step(*args, **kwargs):
        return body(real, *args, **kwargs)

    monkeypatch.setattr(pipeline, name, step)


def count_calls(monkeypatch, name) -> list:
    calls = []
    replace_step(monkeypatch, name, lambda real, *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_parameters_are_the_config_fields(pretrain_module):
    # what the UI form, prefect.yaml and run_deployment see: each field, its default and type
    schema = pretrain_module.pretrain_flow.parameters.properties
    fields = dataclasses.fields(PretrainConfig)
    json_types = {str: "string", int: "integer", float: "number", bool: "boolean"}
    assert list(schema) == [f.name for f in fields]
    for f in fields:
        assert schema[f.name]["default"] == f.default, f.name
        assert schema[f.name]["type"] == json_types[field_types(PretrainConfig)[f.name]], f.name


def test_every_pipeline_step_has_a_task(pretrain_module):
    steps = [name for name in pretrain_module.TASKS if hasattr(pipeline, name)]
    assert steps == list(pretrain_module.TASKS)
    # the I/O steps retry; training and publishing never do
    tasks = pretrain_module.TASKS
    assert tasks["input_checksum"].retries > 0 and tasks["read_events_step"].retries > 0
    assert tasks["train_step"].retries == 0 and tasks["publish_step"].retries == 0


def test_retry_condition_only_for_missing_input(pretrain_module):
    from prefect.states import Failed

    from catvec.base.errors import CatvecError, InputNotFound

    def retried(exc):
        return pretrain_module.events_not_ready(None, None, Failed(data=exc))

    assert retried(InputNotFound("events file x.csv not found; pass --events PATH (CSV, TSV or Parquet)"))
    assert not retried(CatvecError("config file p.toml not found"))
    assert retried(OSError(5, "Input/output error"))
    assert not retried(CatvecError("x.csv: column 'item' is missing"))
    assert not retried(ValueError("bug"))


def test_report_has_corpus_epochs_and_quality(pretrain_module, sample_events, tmp_path):
    cfg = PretrainConfig(events=str(sample_events), out=str(tmp_path), **FAST)
    result = pipeline.pretrain(cfg)
    manifest = dict(result.manifest, quality={"holdout": "last", "vectors": {"test": {"hr": 0.25, "ndcg": 0.125}}})
    text = pretrain_module.pretrain_report(manifest, result.path)
    assert f"# catvec pretrain {result.version}" in text
    assert f"| {manifest['corpus']['events_read']} |" in text
    epochs = manifest["training"]["epochs"]
    assert len(epochs) == 2 and f"| 2 | {epochs[1]['loss']:.4f} |" in text
    assert "| vectors.test.hr | 0.2500 |" in text


def test_flow_and_cli_write_identical_vectors(pretrain_module, prefect_api, sample_events, tmp_path):
    cli_out, flow_out = tmp_path / "cli", tmp_path / "flow"
    argv = ["pretrain", "--quiet", "--events", str(sample_events), "--out", str(cli_out), "--exact",
            "--dim", "8", "--epochs", "2", "--no-vector-map"]
    assert catvec_main(argv) == 0
    path = pretrain_module.pretrain_flow(events=str(sample_events), out=str(flow_out), **FAST)
    assert (flow_out / LATEST).resolve() == (flow_out / Path(path).name).resolve()
    for name in ("vectors.safetensors", "keys.json"):
        assert (cli_out / LATEST / name).read_bytes() == (flow_out / LATEST / name).read_bytes(), name
    cli_manifest, flow_manifest = read_manifest(cli_out / LATEST), read_manifest(flow_out / LATEST)
    for part in ("input", "corpus", "shape"):
        assert cli_manifest[part] == flow_manifest[part], part
    assert dict(cli_manifest["params"], out="") == dict(flow_manifest["params"], out="")


def test_second_run_reuses_the_corpus_and_refresh_extracts_again(pretrain_module, prefect_api, sample_events,
                                                                 tmp_path, monkeypatch):
    reads = count_calls(monkeypatch, "read_events_step")
    run = dict(events=str(sample_events), out=str(tmp_path), **FAST)
    pretrain_module.pretrain_flow(**run)
    pretrain_module.pretrain_flow(**run)
    assert read_manifest(tmp_path / LATEST)["timings"]["corpus_cached"] is True
    pretrain_module.pretrain_flow(**run, refresh=True)
    assert read_manifest(tmp_path / LATEST)["timings"]["corpus_cached"] is False
    assert len(reads) == 2


def test_events_missing_on_first_attempt_then_present_completes(pretrain_module, prefect_api, sample_events,
                                                                tmp_path, monkeypatch):
    events = tmp_path / "incoming" / "events.csv"
    events.parent.mkdir()
    attempts = []

    def checksum_then_deliver(real, *args):
        attempts.append(events.exists())
        try:
            return real(*args)
        finally:
            if not events.exists():  # the upstream export lands between the attempts
                shutil.copy(sample_events, events)

    replace_step(monkeypatch, "input_checksum", checksum_then_deliver)
    task_ = pretrain_module.TASKS["input_checksum"]
    monkeypatch.setitem(pretrain_module.TASKS, "input_checksum", task_.with_options(retry_delay_seconds=0))
    state = pretrain_module.pretrain_flow(events=str(events), out=str(tmp_path / "out"), **FAST, return_state=True)
    assert state.is_completed(), state.message
    assert attempts == [False, True]
    assert len(load_vectors(tmp_path / "out" / LATEST)) > 0


def test_bad_config_fails_before_any_task(pretrain_module, prefect_api, sample_events, tmp_path, monkeypatch):
    calls = count_calls(monkeypatch, "input_checksum")
    state = pretrain_module.pretrain_flow(events=str(sample_events), out=str(tmp_path), epochs=0,
                                          return_state=True)
    assert state.is_failed()
    assert "epochs must be >= 1, got 0" in state.message
    assert calls == []
    assert not (tmp_path / LATEST).exists()


def test_wrong_column_fails_without_retrying(pretrain_module, prefect_api, sample_events, tmp_path, monkeypatch):
    reads = count_calls(monkeypatch, "read_events_step")
    state = pretrain_module.pretrain_flow(events=str(sample_events), out=str(tmp_path), item_col="no_such_column",
                                          **FAST, return_state=True)
    assert state.is_failed()
    assert "no_such_column" in state.message
    assert reads == [1]


def test_failed_training_publishes_nothing(pretrain_module, prefect_api, sample_events, tmp_path, monkeypatch):
    run = dict(events=str(sample_events), out=str(tmp_path), **FAST)
    first = pretrain_module.pretrain_flow(**run)

    def broken(real, *args):
        raise RuntimeError("gensim blew up")

    replace_step(monkeypatch, "train_step", broken)
    state = pretrain_module.pretrain_flow(**run, return_state=True)
    assert state.is_failed() and "gensim blew up" in state.message
    assert (tmp_path / LATEST).resolve() == (tmp_path / Path(first).name).resolve()
    assert list((tmp_path / STAGING).iterdir()) == []
    assert len(load_vectors(tmp_path / LATEST)) > 0


def test_run_step_sees_every_step_in_order(sample_events, tmp_path):
    seen = []

    def record(step, *args, **kwargs):
        seen.append(step.__name__)
        return step(*args, **kwargs)

    cfg = PretrainConfig(events=str(sample_events), out=str(tmp_path), **FAST)
    result = pipeline.pretrain(cfg, run_step=record)
    assert seen == ["input_checksum", "cached_corpus", "read_events_step", "extract_step", "train_step",
                    "export_step", "publish_step"]
    assert (tmp_path / LATEST).resolve() == result.path.resolve()

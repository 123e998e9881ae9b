"""The pretrain flow: same parameters and same vectors as the CLI, every step a task,
retries only where the input may be late, a bad config fails at once, a failed run
publishes nothing."""

import dataclasses
import typing
import shutil
from pathlib import Path

from stepspy import count_calls, record_tasks, replace_step

from catvec.base.config import field_types, flow_default

from catvec.pretraining.config import PretrainConfig
from catvec.base.steps import steps_of, steps_run_by
from catvec.base.layout import LATEST, STAGING
from catvec.base.manifest import read_manifest
from catvec.base.vectors import load_vectors
from catvec.cli.main import main as catvec_main
from catvec.pretraining import pipeline

# tune=False: a corpus-cache hit then reads no events (tuning needs them for its split)
FAST = dict(dim=8, epochs=2, exact=True, vector_map=False, tune=False)
STEPS_IN_ORDER = ["checksum-events", "cached-corpus", "read-events", "extract-corpus", "choose-settings", "train",
                  "export", "publish"]


def test_parameters_are_the_config_fields(pretrain_module):
    # what the UI form, prefect.yaml and run_deployment see: each field, its default and type
    schema = pretrain_module.pretrain_flow.parameters.properties
    fields = dataclasses.fields(PretrainConfig)
    json_types = {str: "string", int: "integer", float: "number", bool: "boolean"}
    assert list(schema) == [f.name for f in fields]
    assert schema["strict"]["default"] is True  # a scheduled run refuses a useless version
    for f in fields:
        assert schema[f.name]["default"] == flow_default(f), f.name
        typ = field_types(PretrainConfig)[f.name]
        if typ in json_types:
            assert schema[f.name]["type"] == json_types[typ], f.name
        else:  # float | None: empty means "chosen by tuning"; bool | None (vector_map): "implied"
            base = next(t for t in typing.get_args(typ) if t is not type(None))
            assert {"type": json_types[base]} in schema[f.name]["anyOf"], f.name


def test_only_the_input_steps_retry(adapter):
    steps = steps_of(pipeline)
    # the steps that only run with a parent version, a holdout or item attributes
    lifecycle = ["load-parent", "inherit-settings", "seed-noise", "compare-parent",
                 "validate-against-parent"]
    attributes = ["load-attributes", "compose-cold"]
    assert sorted(s.info.name for s in steps) == sorted(STEPS_IN_ORDER + ["evaluate"] + lifecycle + attributes)
    retries = {s.info.name: adapter.task_of(s).retries for s in steps}
    assert retries == {name: (adapter.IO_RETRIES if name in ("checksum-events", "read-events", "load-attributes")
                              else 0) for name in retries}


def test_retry_condition_only_for_missing_input(adapter):
    from prefect.states import Failed

    from catvec.base.errors import CatvecError, InputNotFound

    def retried(exc):
        return adapter.input_not_ready(None, None, Failed(data=exc))

    assert retried(InputNotFound("events file x.csv not found; pass --events PATH (CSV, TSV or Parquet)"))
    assert not retried(CatvecError("config file p.toml not found"))
    assert retried(OSError(5, "Input/output error"))
    assert not retried(CatvecError("x.csv: column 'item' is missing"))
    assert not retried(ValueError("bug"))


def test_every_step_call_goes_through_the_runner_in_order(sample_events, tmp_path):
    seen = []

    def record(step, args, kwargs):
        seen.append(step.info.name)
        return step.fn(*args, **kwargs)

    cfg = PretrainConfig(events=str(sample_events), out=str(tmp_path), holdout="last", **FAST)
    with steps_run_by(record):
        result = pipeline.pretrain(cfg)
    assert seen == STEPS_IN_ORDER[:-2] + ["evaluate"] + STEPS_IN_ORDER[-2:]
    assert (tmp_path / LATEST).resolve() == result.path.resolve()


def test_flow_and_cli_write_identical_vectors(pretrain_module, prefect_harness, adapter, monkeypatch, sample_events,
                                              tmp_path):
    tasks = record_tasks(monkeypatch, adapter)
    cli_out, flow_out = tmp_path / "cli", tmp_path / "flow"
    argv = ["pretrain", "--quiet", "--events", str(sample_events), "--out", str(cli_out), "--exact",
            "--dim", "8", "--epochs", "2", "--no-vector-map", "--no-tune"]
    assert catvec_main(argv) == 0
    assert tasks == []  # the CLI runs no task
    path = pretrain_module.pretrain_flow(events=str(sample_events), out=str(flow_out), **FAST)
    assert tasks == STEPS_IN_ORDER
    assert (flow_out / LATEST).resolve() == (flow_out / Path(path).name).resolve()
    for name in ("vectors.safetensors", "keys.json"):
        assert (cli_out / LATEST / name).read_bytes() == (flow_out / LATEST / name).read_bytes(), name
    cli_manifest, flow_manifest = read_manifest(cli_out / LATEST), read_manifest(flow_out / LATEST)
    for part in ("input", "corpus", "shape"):
        assert cli_manifest[part] == flow_manifest[part], part
    # the one parameter whose default differs: a flow refuses a version that fails a sanity gate
    assert (cli_manifest["params"]["strict"], flow_manifest["params"]["strict"]) == (False, True)
    assert dict(cli_manifest["params"], out="", strict=True) == dict(flow_manifest["params"], out="")


def test_second_run_reuses_the_corpus_and_refresh_extracts_again(pretrain_module, prefect_harness, sample_events,
                                                                 tmp_path, monkeypatch):
    reads = count_calls(monkeypatch, pipeline, "read_events_table")
    run = dict(events=str(sample_events), out=str(tmp_path), **FAST)
    pretrain_module.pretrain_flow(**run)
    pretrain_module.pretrain_flow(**run)
    assert read_manifest(tmp_path / LATEST)["timings"]["corpus_cached"] is True
    pretrain_module.pretrain_flow(**run, refresh=True)
    assert read_manifest(tmp_path / LATEST)["timings"]["corpus_cached"] is False
    assert len(reads) == 2


def test_events_missing_on_first_attempt_then_present_completes(pretrain_module, prefect_harness, adapter,
                                                                sample_events, tmp_path, monkeypatch):
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

    monkeypatch.setattr(adapter, "IO_RETRY_DELAYS", [0, 0, 0])
    replace_step(monkeypatch, pipeline, "open_input", checksum_then_deliver)
    state = pretrain_module.pretrain_flow(events=str(events), out=str(tmp_path / "out"), **FAST, return_state=True)
    assert state.is_completed(), state.message
    assert attempts == [False, True]
    assert len(load_vectors(tmp_path / "out" / LATEST)) > 0


def test_a_late_file_is_watched_as_it_arrived(pretrain_module, prefect_harness, adapter, sample_events, tmp_path,
                                              monkeypatch):
    """The retry after a late file notes the arrived file's identity: a change after its read
    (an export that rewrites it in place) is refused, as for a file that was there at once."""
    events = tmp_path / "incoming" / "events.csv"
    events.parent.mkdir()

    def checksum_then_deliver(real, *args):
        try:
            return real(*args)
        finally:
            if not events.exists():
                shutil.copy(sample_events, events)

    def read_then_rewrite(real, *args):
        table = real(*args)
        with events.open("a", encoding="utf-8") as f:  # appended after the read, before the corpus is cached
            f.write("late-user,late-item,1700000000\n")
        return table

    monkeypatch.setattr(adapter, "IO_RETRY_DELAYS", [0, 0, 0])
    replace_step(monkeypatch, pipeline, "open_input", checksum_then_deliver)
    replace_step(monkeypatch, pipeline, "read_events_table", read_then_rewrite)
    state = pretrain_module.pretrain_flow(events=str(events), out=str(tmp_path / "out"), **FAST, return_state=True)
    assert state.is_failed()
    assert "changed while this run read it" in state.message
    assert not (tmp_path / "out" / LATEST).exists()


def test_bad_config_fails_before_any_task(pretrain_module, prefect_harness, adapter, sample_events, tmp_path,
                                          monkeypatch):
    tasks = record_tasks(monkeypatch, adapter)
    state = pretrain_module.pretrain_flow(events=str(sample_events), out=str(tmp_path), epochs=-1,
                                          return_state=True)
    assert state.is_failed()
    assert "epochs must be >= 0, got -1" in state.message
    assert tasks == []
    assert not (tmp_path / LATEST).exists()


def test_wrong_column_fails_without_retrying(pretrain_module, prefect_harness, sample_events, tmp_path, monkeypatch):
    reads = count_calls(monkeypatch, pipeline, "read_events_table")
    state = pretrain_module.pretrain_flow(events=str(sample_events), out=str(tmp_path), item_col="no_such_column",
                                          **FAST, return_state=True)
    assert state.is_failed()
    assert "no_such_column" in state.message
    assert reads == [1]


def test_failed_training_publishes_nothing(pretrain_module, prefect_harness, sample_events, tmp_path, monkeypatch):
    run = dict(events=str(sample_events), out=str(tmp_path), **FAST)
    first = pretrain_module.pretrain_flow(**run)

    def broken(real, *args):
        raise RuntimeError("gensim blew up")

    replace_step(monkeypatch, pipeline, "train_skipgram", broken)
    state = pretrain_module.pretrain_flow(**run, return_state=True)
    assert state.is_failed() and "gensim blew up" in state.message
    assert (tmp_path / LATEST).resolve() == (tmp_path / Path(first).name).resolve()
    assert list((tmp_path / STAGING).iterdir()) == []
    assert len(load_vectors(tmp_path / LATEST)) > 0


def test_the_artifact_is_the_report_with_links(sample_events, tmp_path):
    from catvec.reports.render import artifact_markdown

    result = pipeline.pretrain(PretrainConfig(events=str(sample_events), out=str(tmp_path), holdout="last",
                                              dim=8, epochs=2, exact=True, vector_map=True))
    text = artifact_markdown(result.path, "unused title")
    report = (result.path / "report.md").read_text(encoding="utf-8")
    assert text.startswith(report.rstrip("\n"))
    assert f"# catvec pretrain {result.version}" in text
    corpus = result.manifest["corpus"]
    assert f"| {corpus['events_read']} | {corpus['events_dropped']} | {corpus['users']} |" in text
    epochs = result.manifest["training"]["epochs"]
    assert len(epochs) == 2 and f"| 2 | {epochs[1]['loss']:.4f} |" in text
    hr = result.manifest["quality"]["vectors"]["test"]["hr"]
    assert f"| test | {result.manifest['scoring']['scorer']} (default) | {hr:.4f} |" in text
    assert f"- [vector_map.png]({(result.path / 'vector_map.png').resolve().as_uri()})" in text

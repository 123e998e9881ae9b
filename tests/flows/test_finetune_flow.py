"""The finetune flow: same parameters and the same model as `catvec finetune`."""

import dataclasses

import pytest
from stepspy import record_tasks

from catvec.base.config import field_types

from catvec.finetuning.config import FinetuneConfig

from catvec.pretraining.config import PretrainConfig
from catvec.base.steps import steps_of, steps_run_by
from catvec.base.layout import LATEST
from catvec.cli.main import main as catvec_main
from catvec.finetuning import pipeline as ft
from catvec.pretraining import pipeline

FAST = dict(target="spend", epochs=2, exact=True, hidden="8", auto="off")
STEPS_IN_ORDER = ["load-table", "load-vectors", "resolve-roles", "build-vocabs", "align", "prepare", "train",
                  "export", "publish"]
ALL_STEPS = STEPS_IN_ORDER + ["baselines", "load-previous-model"]   # only with --compare, --warm-start


@pytest.fixture(scope="module")
def weights(sample_events, tmp_path_factory):
    out = tmp_path_factory.mktemp("weights")
    pipeline.pretrain(PretrainConfig(events=str(sample_events), out=str(out), dim=8, epochs=2, exact=True,
                                     vector_map=False))
    return out / LATEST


def test_parameters_are_the_config_fields(finetune_module):
    # what the UI form, prefect.yaml and run_deployment see: each field, its default and type
    schema = finetune_module.finetune_flow.parameters.properties
    fields = dataclasses.fields(FinetuneConfig)
    json_types = {str: "string", int: "integer", float: "number", bool: "boolean"}
    assert list(schema) == [f.name for f in fields]
    for f in fields:
        assert schema[f.name]["default"] == f.default, f.name
        assert schema[f.name]["type"] == json_types[field_types(FinetuneConfig)[f.name]], f.name


def test_only_the_loads_retry(adapter):
    steps = steps_of(ft)
    assert sorted(s.info.name for s in steps) == sorted(ALL_STEPS)
    retrying = sorted(s.info.name for s in steps if adapter.task_of(s).retries)
    assert retrying == ["load-previous-model", "load-table", "load-vectors"]


def test_loads_retry_only_while_an_input_is_missing(adapter, tmp_path):
    from prefect.states import Failed

    from catvec.base.errors import CatvecError
    from catvec.base.manifest import resolve_version_dir
    from catvec.base.tables import read_frame

    def retried(call):
        try:
            call()
        except Exception as exc:  # the real error each loader raises
            return adapter.input_not_ready(None, None, Failed(data=exc))
        raise AssertionError("expected the call to fail")

    assert retried(lambda: resolve_version_dir(tmp_path / "artifacts" / "latest"))
    assert retried(lambda: read_frame(tmp_path / "labels.csv", "table", "--table"))
    (tmp_path / "empty.csv").write_text("")
    assert not retried(lambda: read_frame(tmp_path / "empty.csv", "table", "--table"))
    assert not adapter.input_not_ready(None, None, Failed(data=CatvecError("x not found")))
    assert not adapter.input_not_ready(None, None, Failed(data=RuntimeError("bug")))


def test_every_step_call_goes_through_the_runner_and_alignment_rows(weights, sample_labels, tmp_path):
    from catvec.reports.finetune_report import alignment_rows

    seen = []

    def record(step, args, kwargs):
        seen.append(step.info.name)
        return step.fn(*args, **kwargs)

    cfg = FinetuneConfig(vectors=str(weights), table=str(sample_labels), out=str(tmp_path), compare=True,
                         **{**FAST, "auto": "on"})
    with steps_run_by(record):
        result = ft.finetune(cfg)
    # train once per --auto candidate, then once for scratch; the baselines after them
    trained = len(result.metrics["auto"]["candidates"]) + 1
    assert seen == STEPS_IN_ORDER[:6] + ["train"] * trained + ["baselines"] + STEPS_IN_ORDER[7:]
    rows = alignment_rows(result.alignment)
    assert [r["column"] for r in rows] == list(result.alignment)
    for row in rows:
        assert row["hits"] + row["misses"] == row["vocab_size"]
        assert 0 <= row["entry_coverage"] <= 1


def test_flow_and_cli_write_the_same_model(finetune_module, prefect_harness, adapter, monkeypatch, weights,
                                           sample_labels, tmp_path):
    tasks = record_tasks(monkeypatch, adapter)
    cli_out, flow_out = tmp_path / "cli", tmp_path / "flow"
    argv = ["finetune", "--quiet", "--vectors", str(weights), "--table", str(sample_labels), "--out", str(cli_out),
            "--target", "spend", "--epochs", "2", "--exact", "--hidden", "8", "--auto", "off"]
    assert catvec_main(argv) == 0
    finetune_module.finetune_flow(vectors=str(weights), table=str(sample_labels), out=str(flow_out), **FAST)
    assert tasks == STEPS_IN_ORDER
    for name in ("model.safetensors", "vocabs.json", "metrics.json", "alignment.json"):
        assert (cli_out / LATEST / name).read_bytes() == (flow_out / LATEST / name).read_bytes(), name


def test_bad_config_fails_before_any_task(finetune_module, prefect_harness, adapter, weights, sample_labels, tmp_path,
                                          monkeypatch):
    tasks = record_tasks(monkeypatch, adapter)
    state = finetune_module.finetune_flow(vectors=str(weights), table=str(sample_labels), out=str(tmp_path),
                                          target="spend", mode="thawed", return_state=True)
    assert state.is_failed()
    assert "mode" in state.message and "thawed" in state.message
    assert tasks == []

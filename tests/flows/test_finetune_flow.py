"""The finetune flow: same parameters and the same model as `catvec finetune`."""

import dataclasses

import pytest

from catvec.finetuning import pipeline as ft
from catvec.pretraining import pipeline
from catvec.cli.main import main as catvec_main
from catvec.base.config import FinetuneConfig, PretrainConfig, field_types
from catvec.base.store import LATEST

FAST = dict(target="spend", epochs=2, exact=True, hidden="8")


@pytest.fixture(scope="module")
def finetune_module():
    import flows.finetune

    return flows.finetune


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


def test_every_step_has_a_task_and_only_loads_retry(finetune_module):
    tasks = finetune_module.TASKS
    assert all(hasattr(ft, name) for name in tasks)
    retrying = sorted(name for name, t in tasks.items() if t.retries)
    assert retrying == ["load_table_step", "load_vectors_step"]


def test_loads_retry_only_while_an_input_is_missing(finetune_module, tmp_path):
    from prefect.states import Failed

    from catvec.base.errors import CatvecError
    from catvec.base.tables import read_frame
    from catvec.base.store import resolve_version_dir

    def retried(call):
        try:
            call()
        except Exception as exc:  # the real error each loader raises
            return finetune_module.input_not_ready(None, None, Failed(data=exc))
        raise AssertionError("expected the call to fail")

    assert retried(lambda: resolve_version_dir(tmp_path / "artifacts" / "latest"))
    assert retried(lambda: read_frame(tmp_path / "labels.csv", "table", "--table"))
    (tmp_path / "empty.csv").write_text("")
    assert not retried(lambda: read_frame(tmp_path / "empty.csv", "table", "--table"))
    assert not finetune_module.input_not_ready(None, None, Failed(data=CatvecError("x not found")))
    assert not finetune_module.input_not_ready(None, None, Failed(data=RuntimeError("bug")))


def test_run_step_sees_every_step_and_alignment_rows(finetune_module, weights, sample_labels, tmp_path):
    seen = []

    def record(step, *args, **kwargs):
        seen.append(step.__name__)
        return step(*args, **kwargs)

    cfg = FinetuneConfig(vectors=str(weights), table=str(sample_labels), out=str(tmp_path), **FAST)
    result = ft.finetune(cfg, run_step=record)
    assert seen == ["load_table_step", "load_vectors_step", "resolve_roles_step", "build_vocabs_step",
                    "align_step", "prepare_step", "train_step", "export_step", "publish_step"]
    rows = finetune_module.alignment_rows(result.alignment)
    assert [r["column"] for r in rows] == list(result.alignment)
    for row in rows:
        assert row["hits"] + row["misses"] == row["vocab_size"]
        assert 0 <= row["entry_coverage"] <= 1


def test_flow_and_cli_write_the_same_model(finetune_module, prefect_api, weights, sample_labels, tmp_path):
    cli_out, flow_out = tmp_path / "cli", tmp_path / "flow"
    argv = ["finetune", "--quiet", "--vectors", str(weights), "--table", str(sample_labels), "--out", str(cli_out),
            "--target", "spend", "--epochs", "2", "--exact", "--hidden", "8"]
    assert catvec_main(argv) == 0
    finetune_module.finetune_flow(vectors=str(weights), table=str(sample_labels), out=str(flow_out), **FAST)
    for name in ("model.safetensors", "vocabs.json", "metrics.json", "alignment.json"):
        assert (cli_out / LATEST / name).read_bytes() == (flow_out / LATEST / name).read_bytes(), name


def test_bad_config_fails_before_any_task(finetune_module, prefect_api, weights, sample_labels, tmp_path,
                                          monkeypatch):
    calls = []
    monkeypatch.setitem(finetune_module.TASKS, "load_table_step", lambda *a, **k: calls.append(1))
    state = finetune_module.finetune_flow(vectors=str(weights), table=str(sample_labels), out=str(tmp_path),
                                          target="spend", mode="thawed", return_state=True)
    assert state.is_failed()
    assert "mode" in state.message and "thawed" in state.message
    assert calls == []

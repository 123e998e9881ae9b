"""The promotion gate in the pretrain flow: a promoted version emits the event that starts
the finetune deployment; a candidate the gate kept out of `latest` ends the run Failed
(named NotPromoted, with the reason and how to publish it), emits nothing, and is still
published as an artifact."""

import dataclasses

import pytest

from catvec.pretraining.config import PretrainConfig
from catvec.base.layout import LATEST
from catvec.base.store import VersionStore

FAST = dict(dim=8, epochs=2, exact=True, vector_map=False, tune=False)
REASON = "neighbour overlap@10 0.12 against a seed-noise baseline of 0.70"


@pytest.fixture
def emitted(monkeypatch):
    import prefect.events

    calls = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture
def links(monkeypatch, adapter):
    calls = []
    real = adapter.create_link_artifact
    monkeypatch.setattr(adapter, "create_link_artifact", lambda **kw: (calls.append(kw), real(**kw))[1])
    return calls


@pytest.fixture
def gate_refuses(monkeypatch, pretrain_module):
    """The pipeline as the promotion gate leaves it when it refuses a version that has a parent:
    the version is complete but `latest` stays on the parent, and the result says so."""
    real = pretrain_module.pretrain

    def refused(cfg, **kwargs):
        parent = VersionStore(cfg.out).latest_name()
        result = real(cfg, **kwargs)
        if parent is None:  # the first version has nothing to be compared with
            return result
        VersionStore(cfg.out).publish(parent)
        return dataclasses.replace(result, promoted=False, gate={"promoted": False, "reasons": [REASON]})

    monkeypatch.setattr(pretrain_module, "pretrain", refused)


def test_a_promoted_version_emits_the_event_the_finetune_trigger_expects(pretrain_module, prefect_harness, emitted,
                                                                         sample_events, tmp_path):
    import yaml

    from flows.serve import PREFECT_YAML

    path = pretrain_module.pretrain_flow(events=str(sample_events), out=str(tmp_path), **FAST)
    assert len(emitted) == 1
    event = emitted[0]
    latest = (tmp_path / LATEST).resolve()
    assert event["event"] == pretrain_module.PROMOTED_EVENT
    assert event["resource"][pretrain_module.PATH_LABEL] == str(latest) == str((tmp_path / path).resolve())
    assert event["resource"]["prefect.resource.id"] == f"catvec.vectors.{latest}"

    # the finetune deployment waits for exactly this event and hands its path on as `vectors`
    spec = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    finetune = next(d for d in spec["deployments"] if d["entrypoint"].startswith("flows/finetune.py"))
    assert "schedules" not in finetune
    (trigger,) = finetune["triggers"]
    assert trigger["expect"] == [pretrain_module.PROMOTED_EVENT]
    assert event["resource"]["prefect.resource.id"].startswith(trigger["match"]["prefect.resource.id"].rstrip("*"))
    assert trigger["parameters"] == {"vectors": f"{{{{ event.resource['{pretrain_module.PATH_LABEL}'] }}}}"}


def test_a_refused_version_fails_the_run_visibly_and_emits_nothing(pretrain_module, prefect_harness, gate_refuses,
                                                                   emitted, links, sample_events, tmp_path):
    from prefect.states import StateType

    run = dict(events=str(sample_events), out=str(tmp_path), **FAST)
    first = pretrain_module.pretrain_flow(**run)
    emitted.clear()
    links.clear()

    state = pretrain_module.pretrain_flow(**run, return_state=True)
    assert state.type == StateType.FAILED and state.name == "NotPromoted"
    candidate = [v for v in VersionStore(tmp_path).versions() if v != (tmp_path / first).resolve().name]
    assert len(candidate) == 1
    assert REASON in state.message and f"catvec promote {tmp_path} {candidate[0]}" in state.message
    assert emitted == []  # the finetune deployment does not start
    assert (tmp_path / LATEST).resolve() == (tmp_path / first).resolve()
    # the candidate is still there to look at
    assert [link["link"] for link in links] == [(tmp_path / candidate[0]).resolve().as_uri()]
    assert "candidate" in links[0]["description"]


def test_the_flow_script_exits_3_for_a_candidate(pretrain_module, prefect_harness, gate_refuses, adapter, emitted,
                                                  sample_events, tmp_path, capsys):
    argv = [str(sample_events), str(tmp_path), "--dim", "8", "--epochs", "2", "--no-vector-map", "--no-tune"]
    assert adapter.command_line(pretrain_module.pretrain_flow, PretrainConfig, ("events", "out"), ("events",),
                                argv=argv) == 0
    capsys.readouterr()
    assert adapter.command_line(pretrain_module.pretrain_flow, PretrainConfig, ("events", "out"), ("events",),
                                argv=argv) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("catvec: not promoted: version ") and REASON in err[-1]  # as the CLI says it


def test_the_gate_checks_are_a_table_artifact(pretrain_module, prefect_harness, emitted, sample_events, tmp_path,
                                              monkeypatch):
    tables = []
    real = pretrain_module.create_table_artifact
    monkeypatch.setattr(pretrain_module, "create_table_artifact", lambda **kw: (tables.append(kw), real(**kw))[1])
    run = dict(events=str(sample_events), out=str(tmp_path), **FAST)
    pretrain_module.pretrain_flow(**run)
    assert not [t for t in tables if t["key"] == pretrain_module.GATE_KEY]  # a first version: nothing to check
    pretrain_module.pretrain_flow(**dict(run, seed=2))
    (gate,) = [t for t in tables if t["key"] == pretrain_module.GATE_KEY]
    checks = {row["check"]: row for row in gate["table"]}
    assert {"drift", "lost_keys", "lost_traffic", "new_traffic", "quality"} <= set(checks)
    assert checks["lost_keys"]["figure"] == 0.0 and checks["lost_keys"]["threshold"] == 0.1
    assert all(row["result"] == "pass" for row in gate["table"]) and "promoted" in gate["description"]

"""The shipped deployments: the promoted event names its OUT, the finetune trigger matches
only versions promoted into its own vectors' OUT, the pretrain deployment leaves tuned
settings to the lineage, and a finetune on vectors whose keys do not fit its table ends in
one line before any task runs."""

import random

import pytest
from stepspy import record_tasks

from catvec.finetuning.config import FinetuneConfig

from catvec.pretraining.config import PretrainConfig
from catvec.base.layout import LATEST
from catvec.pretraining import pipeline
from catvec.pretraining.autotune import TUNED

FAST = dict(dim=8, epochs=2, exact=True, vector_map=False, tune=False)


def deployments():
    from flows.serve import load_deployments

    found = {}
    for d in load_deployments():
        found["finetune" if "finetune" in d.entrypoint else "pretrain"] = d
    return found


def promoted_resource(pretrain_module, version_dir):
    """The resource of the event emit_promoted sends for a version directory."""
    import prefect.events

    sent = []
    real = prefect.events.emit_event
    prefect.events.emit_event = lambda **kw: sent.append(kw)
    try:
        pretrain_module.emit_promoted(type("Result", (), {"path": version_dir, "version": version_dir.name,
                                                          "manifest": {}})())
    finally:
        prefect.events.emit_event = real
    from prefect.events.schemas.events import Resource

    return Resource(sent[0]["resource"])


def test_the_finetune_trigger_matches_its_own_out_only(pretrain_module, tmp_path):
    from flows.serve import REPO

    (trigger,) = deployments()["finetune"].triggers
    own = promoted_resource(pretrain_module, REPO / "artifacts" / "20261201T000000000Z-aaaaaa")
    other = promoted_resource(pretrain_module, tmp_path / "elsewhere" / "20261201T000000000Z-bbbbbb")
    prefix = promoted_resource(pretrain_module, REPO / "artifacts-other" / "20261201T000000000Z-cccccc")
    assert own[pretrain_module.OUT_LABEL] == str((REPO / "artifacts").resolve())
    assert trigger.match.matches(own)
    assert not trigger.match.matches(other) and not trigger.match.matches(prefix)
    assert trigger.expect == {pretrain_module.PROMOTED_EVENT}


def test_the_pretrain_deployment_leaves_tuned_settings_to_the_lineage():
    params = deployments()["pretrain"].parameters
    assert not set(params) & {*TUNED, "scorer", "min_support"}, params


def test_the_promoted_event_names_its_out(pretrain_module, prefect_harness, monkeypatch, sample_events, tmp_path):
    import prefect.events

    sent = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kw: sent.append(kw))
    pretrain_module.pretrain_flow(events=str(sample_events), out=str(tmp_path / "out"), **FAST)
    (event,) = sent
    assert event["resource"][pretrain_module.OUT_LABEL] == str((tmp_path / "out").resolve())
    assert event["resource"][pretrain_module.PATH_LABEL] == str((tmp_path / "out" / LATEST).resolve())


@pytest.fixture(scope="module")
def foreign_vectors(tmp_path_factory):
    """A version whose keys share nothing with data/labels.csv's item ids."""
    root = tmp_path_factory.mktemp("foreign")
    rng = random.Random(2)
    lines = ["user_id,item_id,timestamp"] + [f"u{u},sku{rng.randrange(20)},{t}" for u in range(40) for t in range(8)]
    (root / "events.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pipeline.pretrain(PretrainConfig(events=str(root / "events.csv"), out=str(root / "out"), **FAST))
    return root / "out" / LATEST


def test_a_finetune_on_vectors_that_do_not_fit_refuses_in_one_line(finetune_module, prefect_harness, adapter,
                                                                     monkeypatch, foreign_vectors, sample_labels,
                                                                     tmp_path, capsys):
    from flows.adapter import REFUSED

    tasks = record_tasks(monkeypatch, adapter)
    params = dict(vectors=str(foreign_vectors), table=str(sample_labels), target="spend", cat_cols="item_id,channel",
                  cont_cols="price,quantity", group_col="item_id", out=str(tmp_path / "models"), epochs=1)
    state = finetune_module.finetune_flow(**params, return_state=True)
    assert state.is_failed() and state.name == REFUSED
    assert "\n" not in state.message and "no column's values match the keys" in state.message
    assert tasks == [] and not (tmp_path / "models" / LATEST).exists()

    argv = [str(sample_labels), "spend", str(foreign_vectors), str(tmp_path / "models"), "--cat-cols", "item_id,channel",
            "--epochs", "1"]
    capsys.readouterr()
    assert adapter.command_line(finetune_module.finetune_flow, FinetuneConfig, ("table", "target", "vectors", "out"),
                                ("table", "vectors"), argv=argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("catvec: error: ") and "no column's values match the keys" in err[-1]
    assert not any("Traceback" in line for line in err)

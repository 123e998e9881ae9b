"""End to end on a real Prefect server: serve the deployments of prefect.yaml, trigger a
pretrain run and then a finetune run through the API, and check what they left behind."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from catvec.base.store import LATEST
from catvec.base.vectors import load_vectors

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SERVE_READY_TIMEOUT_S = 90
RUN_TIMEOUT_S = 150
DEPLOYMENTS = ("catvec-pretrain/nightly", "catvec-finetune/nightly")


@pytest.fixture
def served(prefect_server, tmp_path):
    """flows/serve.py against the shared server; always stopped, its log shown on failure."""
    from flows.serve import stop_process

    _, env = prefect_server
    env = dict(env, PREFECT_RUNNER_POLL_FREQUENCY="1")  # pick up triggered runs within a second
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(REPO / "flows" / "serve.py")], cwd=REPO, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process, log_path
        finally:
            stop_process(process)


def wait_for_deployments(client, process, log_path) -> dict:
    deadline = time.monotonic() + SERVE_READY_TIMEOUT_S
    while True:
        assert process.poll() is None, f"serve.py exited:\n{log_path.read_text()[-4000:]}"
        try:
            return {name: client.read_deployment_by_name(name) for name in DEPLOYMENTS}
        except Exception:
            if time.monotonic() > deadline:
                raise AssertionError(f"deployments not registered in time:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)


def test_serve_and_trigger_pretrain_then_finetune(prefect_api, served, sample_events, sample_labels, tmp_path):
    from prefect.client.orchestration import get_client
    import httpx
    from prefect.deployments import run_deployment

    from catvec.finetuning.modeldir import load_model

    process, log_path = served
    artifacts_dir, models_dir = tmp_path / "artifacts", tmp_path / "models"
    with get_client(sync_client=True) as client:
        deployments = wait_for_deployments(client, process, log_path)
        crons = {name: [s.schedule.cron for s in d.schedules] for name, d in deployments.items()}
        assert crons == {"catvec-pretrain/nightly": ["0 2 * * *"], "catvec-finetune/nightly": ["30 3 * * *"]}

        pretrain_run = run_deployment(
            "catvec-pretrain/nightly", timeout=RUN_TIMEOUT_S, poll_interval=1,
            parameters={"events": str(sample_events), "out": str(artifacts_dir), "dim": 8, "epochs": 2,
                        "vector_map": False})
        assert pretrain_run.state.is_completed(), f"{pretrain_run.state!r}\n{log_path.read_text()[-4000:]}"
        finetune_run = run_deployment(
            "catvec-finetune/nightly", timeout=RUN_TIMEOUT_S, poll_interval=1,
            parameters={"vectors": str(artifacts_dir / LATEST), "table": str(sample_labels),
                        "out": str(models_dir), "epochs": 2, "compare": False})
        assert finetune_run.state.is_completed(), f"{finetune_run.state!r}\n{log_path.read_text()[-4000:]}"

        vectors = load_vectors(artifacts_dir / LATEST)
        assert len(vectors) > 0 and vectors.dim == 8
        model = load_model(models_dir / LATEST)
        assert "item_id" in model.roles.pretrained

    # the REST API directly: this client version sends nulls that its server refuses
    keys = {}
    for run in (pretrain_run, finetune_run):
        response = httpx.post(f"{prefect_api}/artifacts/filter", timeout=30,
                              json={"artifacts": {"flow_run_id": {"any_": [str(run.id)]}}, "limit": 50})
        response.raise_for_status()
        keys.update({a["key"]: a for a in response.json()})
    assert set(keys) == {"catvec-pretrain-report", "catvec-pretrain-version", "catvec-finetune-report",
                         "catvec-finetune-alignment", "catvec-finetune-model"}
    assert (artifacts_dir / LATEST).resolve().as_uri() in keys["catvec-pretrain-version"]["data"]
    assert "| epoch | loss |" in keys["catvec-pretrain-report"]["data"]
    assert '"column": "item_id"' in keys["catvec-finetune-alignment"]["data"].replace("'", '"')

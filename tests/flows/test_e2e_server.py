"""End to end on a real Prefect server, both ways of running the deployments of prefect.yaml:
flows/serve.py, and Prefect's own CLI (`prefect deploy --all` + a process worker). Each runs
the pretrain deployment and sees the finetune deployment started by the promoted event, on
exactly the promoted version, and completed.

Both work on a copy of the repository root (flows/, prefect.yaml with small parameters,
data/), so the deployments' relative paths land in a temp dir, never in the repository."""

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from catvec.base.layout import LATEST
from catvec.base.manifest import read_manifest
from catvec.base.vectors import load_vectors

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 90
RUN_TIMEOUT_S = 150
PRETRAIN, FINETUNE = "catvec-pretrain/nightly", "catvec-finetune/nightly"
SMALL = {PRETRAIN: dict(dim=8, epochs=2, vector_map=False, tune=False), FINETUNE: dict(epochs=2, compare=False)}


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The repository root as `prefect deploy` and serve.py see it, with small parameters."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "flows", root / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "prefect.toml", root)
    (root / "data").mkdir()
    for name in ("events.csv", "labels.csv"):
        shutil.copy(REPO / "data" / name, root / "data")
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    for entry in spec["deployments"]:
        flow_name = "catvec-pretrain" if "pretrain" in entry["entrypoint"] else "catvec-finetune"
        entry["parameters"].update(SMALL[f"{flow_name}/{entry['name']}"])
    (root / "prefect.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return root


def child_env(prefect_server) -> dict:
    # the copy's flows import the catvec under test; runs are picked up within a second
    return dict(prefect_server[1], PYTHONPATH=str(REPO), PREFECT_RUNNER_POLL_FREQUENCY="1",
                PREFECT_WORKER_QUERY_SECONDS="1", COLUMNS="250")  # wide tables: names not cut


def prefect_cli(*args, cwd, env, timeout=120) -> str:
    exe = Path(sys.executable).with_name("prefect")
    # PWD too: prefect.yaml's pull step resolves {{ $PWD }} when deploying
    out = subprocess.run([str(exe), "--no-prompt", *args], cwd=cwd, env=dict(env, PWD=str(cwd)),
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"prefect {' '.join(args)}: {out.returncode}\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out.stdout


def start(cmd, cwd, env, log_path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, cwd=cwd, env=dict(env, PWD=str(cwd)), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_for(what: str, poll, log_path: Path, timeout=RUN_TIMEOUT_S):
    """poll() until it returns something truthy; fail with the process log after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = poll()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout} s\n{log_path.read_text(errors='replace')[-4000:]}")


def final_run(client, run_id, log_path):
    def poll():
        run = client.read_flow_run(run_id)
        return run if run.state is not None and run.state.is_final() else None

    return wait_for(f"flow run {run_id} to finish", poll, log_path)


def triggered_finetune(client, vectors: Path, log_path):
    """The finetune run the promoted event started: its `vectors` is the promoted version."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deployment = client.read_deployment_by_name(FINETUNE)

    def poll():
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
        mine = [r for r in runs if r.parameters.get("vectors") == str(vectors)]
        return mine[0] if mine else None

    return final_run(client, wait_for("the triggered finetune run", poll, log_path).id, log_path)


def check_chain(client, pretrain_run, root: Path, log_path: Path):
    """pretrain completed and published; a finetune run was triggered on that version and completed."""
    from catvec.finetuning.modeldir import load_model

    assert pretrain_run.state.is_completed(), f"{pretrain_run.state!r}\n{log_path.read_text()[-4000:]}"
    version = (root / "artifacts" / LATEST).resolve()
    assert read_manifest(version)["version"] == version.name
    assert load_vectors(version).dim == 8
    finetune_run = triggered_finetune(client, version, log_path)
    assert finetune_run.state.is_completed(), f"{finetune_run.state!r}\n{log_path.read_text()[-4000:]}"
    model = load_model(root / "models" / LATEST)
    assert "item_id" in model.roles.pretrained
    return finetune_run


def test_serve_runs_pretrain_and_the_promoted_event_starts_finetune(prefect_server, prefect_api, repo_copy,
                                                                     tmp_path):
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from flows.serve import stop_process

    log_path = tmp_path / "serve.log"
    process = start([sys.executable, str(repo_copy / "flows" / "serve.py")], repo_copy, child_env(prefect_server),
                    log_path)
    try:
        with get_client(sync_client=True) as client:
            def registered():
                assert process.poll() is None, f"serve.py exited:\n{log_path.read_text()[-4000:]}"
                try:
                    return {name: client.read_deployment_by_name(name) for name in (PRETRAIN, FINETUNE)}
                except Exception:
                    return None

            deployments = wait_for("deployments registered by serve.py", registered, log_path, READY_TIMEOUT_S)
            crons = {name: [s.schedule.cron for s in d.schedules] for name, d in deployments.items()}
            assert crons == {PRETRAIN: ["0 2 * * *"], FINETUNE: []}  # finetune runs on the event, not a clock

            pretrain_run = run_deployment(PRETRAIN, timeout=RUN_TIMEOUT_S, poll_interval=1)
            finetune_run = check_chain(client, pretrain_run, repo_copy, log_path)
    finally:
        stop_process(process)

    keys = {}
    for run in (pretrain_run, finetune_run):
        response = httpx.post(f"{prefect_api}/artifacts/filter", timeout=30,
                              json={"artifacts": {"flow_run_id": {"any_": [str(run.id)]}}, "limit": 50})
        response.raise_for_status()
        keys.update({a["key"]: a for a in response.json()})
    assert set(keys) == {"catvec-pretrain-report", "catvec-pretrain-version", "catvec-finetune-report",
                         "catvec-finetune-alignment", "catvec-finetune-model"}
    assert (repo_copy / "artifacts" / LATEST).resolve().as_uri() in keys["catvec-pretrain-version"]["data"]
    assert "| epoch | loss |" in keys["catvec-pretrain-report"]["data"]


def test_prefect_cli_deploy_worker_and_the_triggered_finetune(prefect_server, repo_copy, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from flows.serve import stop_process

    env = child_env(prefect_server)
    prefect_cli("work-pool", "create", "catvec-local", "--type", "process", "--overwrite", cwd=repo_copy, env=env)
    log_path = tmp_path / "worker.log"
    worker = start([str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", "catvec-local"],
                   repo_copy, env, log_path)  # starts up while the deployments are made
    try:
        assert "catvec-local" in prefect_cli("work-pool", "ls", cwd=repo_copy, env=env)
        deployed = prefect_cli("deploy", "--all", cwd=repo_copy, env=env)
        assert PRETRAIN in deployed and FINETUNE in deployed
        listed = prefect_cli("deployment", "ls", cwd=repo_copy, env=env)
        assert PRETRAIN in listed and FINETUNE in listed

        started = prefect_cli("deployment", "run", PRETRAIN, cwd=repo_copy, env=env)
        run_id = re.search(r"flow-run/([0-9a-f-]{36})", started).group(1)
        with temporary_settings(updates={PREFECT_API_URL: prefect_server[0]}), get_client(sync_client=True) as client:
            pretrain_run = final_run(client, run_id, log_path)
            finetune_run = check_chain(client, pretrain_run, repo_copy, log_path)
        runs = prefect_cli("flow-run", "ls", cwd=repo_copy, env=env)
        assert str(pretrain_run.id)[:8] in runs and str(finetune_run.id)[:8] in runs
    finally:
        stop_process(worker)

"""Serve the deployments declared in prefect.yaml from one process, with their schedules.

    python flows/serve.py          # also starts a local Prefect server, UI at http://127.0.0.1:4200
    PREFECT_API_URL=http://127.0.0.1:4200/api python flows/serve.py   # use a running server

prefect.yaml stays the one description of the deployments (entrypoints, parameters, cron
schedules, event triggers): this script reads it, so `prefect deploy --all` plus a process worker and this
command run the same thing. Scheduled and triggered runs execute as subprocesses of this
one; relative paths in the parameters are relative to the repository root. Ctrl-C stops
serving (the deployments' schedules are paused) and the server, if this script started it.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `flows` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows import STARTUP_TIMEOUT_S  # noqa: E402  (no prefect import: PREFECT_API_URL is set below first)

REPO = Path(__file__).resolve().parent.parent
PREFECT_YAML = REPO / "prefect.yaml"


def start_server(host: str = "127.0.0.1", port: int = 4200, env: dict | None = None, log=None) -> subprocess.Popen:
    """Start `prefect server start` in its own process group; returns the process."""
    prefect = Path(sys.executable).with_name("prefect")
    cmd = [str(prefect) if prefect.exists() else "prefect", "server", "start", "--host", host, "--port", str(port),
           "--analytics-off"]
    return subprocess.Popen(cmd, env=env, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for_server(api_url: str, process: subprocess.Popen | None = None, timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Poll API_URL/health until it answers; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with status {process.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the Prefect server at {api_url} did not answer within {timeout:.0f} s")


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group started by start_server (or serve), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def load_deployments(path: Path = PREFECT_YAML, names: list[str] | None = None) -> list:
    """RunnerDeployments for the deployments in prefect.yaml (all, or those named), with
    their cron schedules and their event triggers (validated as `prefect deploy` does)."""
    import yaml
    from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes
    from prefect.flows import load_flow_from_entrypoint
    from prefect.schedules import Cron
    from pydantic import TypeAdapter

    trigger_types = TypeAdapter(DeploymentTriggerTypes)

    from prefect.utilities.templating import apply_values

    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    # {{ $VAR }} as `prefect deploy` resolves it; $PWD is the repository root, as the pull step means
    spec = apply_values(spec, {**os.environ, "PWD": str(path.parent.resolve())}, remove_notset=False)
    deployments = []
    for entry in spec.get("deployments", []):
        if names and entry["name"] not in names:
            continue
        flow = load_flow_from_entrypoint(str(path.parent / entry["entrypoint"]))
        schedules = [Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True))
                     for s in entry.get("schedules") or [] if "cron" in s]
        triggers = [trigger_types.validate_python(spec) for spec in entry.get("triggers") or []]
        deployments.append(flow.to_deployment(
            name=entry["name"], description=entry.get("description"), tags=entry.get("tags"),
            parameters=entry.get("parameters") or {}, schedules=schedules, triggers=triggers,
            concurrency_limit=entry.get("concurrency_limit")))
    return deployments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve the catvec deployments from prefect.yaml.")
    parser.add_argument("--host", default="127.0.0.1", help="server host when this script starts one")
    parser.add_argument("--port", type=int, default=4200, help="server port when this script starts one")
    parser.add_argument("--deployment", action="append", help="serve only this deployment name (repeatable)")
    args = parser.parse_args(argv)

    os.chdir(REPO)  # prefect.toml and the relative paths in prefect.yaml are relative to here
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        api_url = f"http://{args.host}:{args.port}/api"
        print(f"starting a Prefect server: UI at http://{args.host}:{args.port}", flush=True)
        server = start_server(args.host, args.port)
        wait_for_server(api_url, server)
        os.environ["PREFECT_API_URL"] = api_url  # before prefect is imported: its settings read it once
    try:
        from prefect import serve

        serve(*load_deployments(names=args.deployment))
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            stop_process(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())

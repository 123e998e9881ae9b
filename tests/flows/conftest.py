"""Flow tests run against Prefect's test harness (a temporary server on a temporary
database, one per test session); only test_e2e_server.py starts a real `prefect server`.
PREFECT_HOME is a temporary directory (tests/conftest.py), never ~/.prefect."""

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `import flows.pretrain`, as `prefect deploy` sees it from the root

from flows import STARTUP_TIMEOUT_S  # noqa: E402
from flows.serve import start_server, stop_process, wait_for_server  # noqa: E402


@pytest.fixture(scope="session")
def prefect_harness():
    """Prefect's own test harness for the whole session: flows run against it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=STARTUP_TIMEOUT_S):
        yield


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_SERVER_UI_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING", **extra)
    return env


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real `prefect server start` on 127.0.0.1:<free port>: yields (api_url, env for clients)."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        process = start_server("127.0.0.1", port, env=server_env(home), log=log)
        try:
            try:
                wait_for_server(api_url, process, timeout=STARTUP_TIMEOUT_S)
            except Exception:
                raise RuntimeError(f"Prefect server did not start; its log:\n{log_path.read_text()[-4000:]}")
            yield api_url, server_env(home, PREFECT_API_URL=api_url)
        finally:
            stop_process(process)


@pytest.fixture
def prefect_api(prefect_server):
    """Point this process's Prefect client at the real server for one test."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server[0]}):
        yield prefect_server[0]
        drain_prefect_workers()


def drain_prefect_workers() -> None:
    """Send the buffered run logs and events now, while the server is up (as prefect_test_harness does)."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain():
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:  # never started
            pass
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


@pytest.fixture(scope="session")
def pretrain_module():
    import flows.pretrain

    return flows.pretrain


@pytest.fixture(scope="session")
def finetune_module():
    import flows.finetune

    return flows.finetune


@pytest.fixture
def adapter():
    import flows.adapter

    return flows.adapter

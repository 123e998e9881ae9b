"""A new user's first flow run starts Prefect's temporary server on a fresh PREFECT_HOME,
which takes longer than Prefect's default 20 s wait: both ways of running a flow raise it."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
PRINT_TIMEOUT = ("from prefect.settings import get_current_settings; "
                 "print(get_current_settings().server.ephemeral.startup_timeout_seconds)")


def test_startup_timeout_is_raised_in_the_repo_and_by_the_flows(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != SETTING}
    env["PREFECT_HOME"] = str(tmp_path / "fresh-home")
    env["PYTHONPATH"] = str(REPO)
    runs = {
        # prefect.toml, for any prefect command started in the repository root
        "repo root": subprocess.Popen([sys.executable, "-c", PRINT_TIMEOUT], cwd=REPO, env=env,
                                      stdout=subprocess.PIPE, text=True),
        # the flow modules themselves, wherever they are started from
        "elsewhere": subprocess.Popen([sys.executable, "-c", "import flows.pretrain, flows.finetune; " + PRINT_TIMEOUT],
                                      cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True),
    }
    for where, process in runs.items():
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0, where
        assert int(out.split()[-1]) >= 120, where

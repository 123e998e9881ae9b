"""A new user's first flow run starts Prefect's temporary server on a fresh PREFECT_HOME,
which takes longer than Prefect's default 20 s wait: every flow entry point raises it,
from one place (flows/__init__.py), and the flow files answer --help."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
PRINT_TIMEOUT = ("from prefect.settings import get_current_settings; "
                 "print(get_current_settings().server.ephemeral.startup_timeout_seconds)")


def fresh_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != SETTING}
    env["PREFECT_HOME"] = str(tmp_path / "fresh-home")
    return env


def test_startup_timeout_is_raised_by_every_flow_module(tmp_path):
    env = dict(fresh_env(tmp_path), PYTHONPATH=str(REPO))
    for module in ("flows.pretrain", "flows.finetune", "flows.adapter"):
        out = subprocess.run([sys.executable, "-c", f"import {module}; " + PRINT_TIMEOUT], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert int(out.stdout.split()[-1]) >= 120, module


def test_an_explicit_setting_wins(tmp_path):
    env = dict(fresh_env(tmp_path), PYTHONPATH=str(REPO), **{SETTING: "77"})
    out = subprocess.run([sys.executable, "-c", "import flows.pretrain; " + PRINT_TIMEOUT], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "77"


def test_flow_scripts_answer_help_without_running(tmp_path):
    for script, positional in (("pretrain.py", "events"), ("finetune.py", "table")):
        out = subprocess.run([sys.executable, str(REPO / "flows" / script), "--help"], cwd=tmp_path,
                             env=fresh_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "usage:" in out.stdout and positional in out.stdout
        assert not (tmp_path / "artifacts").exists() and not (tmp_path / "models").exists()

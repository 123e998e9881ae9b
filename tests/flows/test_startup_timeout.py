"""A new user's first flow run starts Prefect's temporary server on a fresh PREFECT_HOME,
which takes longer than Prefect's default 20 s wait: every flow entry point raises it,
from one place (flows/__init__.py). The flow files answer --help and refuse bad input
before Prefect starts."""

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


def run_script(script: str, *args, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "flows" / script), *args], cwd=tmp_path,
                          env=fresh_env(tmp_path), capture_output=True, text=True, timeout=120)


def test_flow_scripts_answer_help_without_running(tmp_path):
    for script, positional in (("pretrain.py", "EVENTS"), ("finetune.py", "TABLE")):
        out = run_script(script, "--help", tmp_path=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        assert f"usage: python flows/{script}" in out.stdout and positional in out.stdout
        assert "--epochs EPOCHS" in out.stdout and "--config FILE.toml" in out.stdout  # the config's options
        assert not (tmp_path / "artifacts").exists() and not (tmp_path / "models").exists()
    # the one default a flow changes is named as the flow's
    assert "(default in a flow: True)" in run_script("pretrain.py", "--help", tmp_path=tmp_path).stdout


def test_flow_scripts_refuse_a_missing_input_or_a_bad_option_at_once(tmp_path):
    # checked before Prefect starts: one line, exit 2, no run and so no retries
    cases = [(("pretrain.py", "no_such_events.csv", str(tmp_path / "out")), "events no_such_events.csv not found"),
             (("pretrain.py", "--epochs", "-1"), "epochs must be >= 0, got -1"),
             (("finetune.py", "no_such_table.csv", "spend", str(tmp_path)), "table no_such_table.csv not found"),
             (("pretrain.py", "--epochs", "many"), "argument --epochs: invalid int value: 'many'")]
    for args, message in cases:
        out = run_script(*args, tmp_path=tmp_path)
        assert out.returncode == 2, (args, out.stderr[-2000:])
        assert message in out.stderr.strip().splitlines()[-1], (args, out.stderr[-2000:])
        assert "flow run" not in out.stdout + out.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "fresh-home" / "prefect.db").exists()

"""`python flows/X.py` reports a failed run as `catvec` does (flows.adapter.command_line
reuses catvec.cli.main.run_reporting_errors): one line and exit 1 for a failure that is no
user error, the traceback with --debug; the options reach the flow as given."""

import pytest
from prefect import flow

from catvec.base.config import with_config_signature
from catvec.pretraining.config import PretrainConfig

SEEN = []


@flow(name="catvec-test-failing", persist_result=False)
@with_config_signature(PretrainConfig)
def failing_flow(**params) -> str:
    """A flow that fails after seeing its parameters."""
    SEEN.append(params)
    raise RuntimeError("the disk caught fire")


def test_a_failed_run_is_one_line_exit_1_and_the_traceback_with_debug(prefect_harness, adapter, sample_events,
                                                                       tmp_path, capsys):
    toml = tmp_path / "p.toml"
    toml.write_text("epochs = 3\ndim = 16\n")
    argv = [str(sample_events), str(tmp_path / "out"), "--config", str(toml), "--dim", "8"]
    SEEN.clear()
    assert adapter.command_line(failing_flow, PretrainConfig, ("events", "out"), ("events",), argv=argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("catvec: internal error: RuntimeError: the disk caught fire "
                       "(run again with --debug for the traceback)")
    # the file's options overridden by the flags; the rest were the flow's defaults
    assert SEEN[0]["events"] == str(sample_events) and (SEEN[0]["epochs"], SEEN[0]["dim"]) == (3, 8)
    assert SEEN[0]["strict"] is True and SEEN[0]["window"] == PretrainConfig.window

    with pytest.raises(RuntimeError, match="the disk caught fire"):
        adapter.command_line(failing_flow, PretrainConfig, ("events", "out"), ("events",), argv=[*argv, "--debug"])

"""What the commands and the flow scripts share (catvec.cli.options, catvec.cli.main):
options from a TOML file and flags, a flow's defaults in the help, one error reporter."""

import argparse

import pytest

from catvec.base.errors import EXIT_INTERNAL, EXIT_NOT_PROMOTED, EXIT_USER_ERROR, CatvecError, NotPromoted
from catvec.cli.main import run_reporting_errors
from catvec.cli.options import add_config_arguments, config_from_args, options_given
from catvec.pretraining.config import PretrainConfig


def parse(argv, **kwargs) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, PretrainConfig, **kwargs)
    return parser.parse_args(argv)


def test_options_given_are_the_file_overridden_by_the_flags(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text("epochs = 3\ndim = 16\n")
    args = parse(["--config", str(toml), "--dim", "8", "--no-tune"])
    assert options_given(PretrainConfig, args) == {"epochs": 3, "dim": 8, "tune": False}
    cfg = config_from_args(PretrainConfig, args)
    assert (cfg.epochs, cfg.dim, cfg.tune, cfg.window) == (3, 8, False, PretrainConfig.window)
    assert options_given(PretrainConfig, parse([])) == {}


def test_positionals_take_the_place_of_their_flags():
    args = parse(["e.csv", "o", "--epochs", "2"], positional=("events", "out"))
    assert options_given(PretrainConfig, args) == {"events": "e.csv", "out": "o", "epochs": 2}
    with pytest.raises(SystemExit):
        parse(["--events", "e.csv"], positional=("events", "out"))


def test_the_help_names_a_flow_default_only_where_it_differs(capsys):
    for flow, expected in ((False, "(default: False)"), (True, "(default in a flow: True)")):
        parser = argparse.ArgumentParser()
        add_config_arguments(parser, PretrainConfig, flow=flow)
        strict = next(a for a in parser._actions if a.dest == "strict")
        epochs = next(a for a in parser._actions if a.dest == "epochs")
        assert strict.help.endswith(expected) and epochs.help.endswith(f"(default: {PretrainConfig.epochs!r})")


def fails(exc):
    def run():
        raise exc
    return run


@pytest.mark.parametrize("run, status, line", [
    (lambda: None, 0, None),
    (lambda: 0, 0, None),
    (fails(CatvecError("events x.csv not found\nnext line")), EXIT_USER_ERROR,
     "catvec: error: events x.csv not found\\nnext line"),
    (fails(NotPromoted("version v kept as a candidate")), EXIT_NOT_PROMOTED,
     "catvec: not promoted: version v kept as a candidate"),
    (fails(RuntimeError("boom")), EXIT_INTERNAL,
     "catvec: internal error: RuntimeError: boom (run again with --debug for the traceback)"),
])
def test_one_reporter_gives_each_failure_one_line_and_its_exit_status(run, status, line, capsys):
    assert run_reporting_errors(run) == status
    err = capsys.readouterr().err.splitlines()
    assert err == ([line] if line else [])


def test_debug_shows_the_exception_itself():
    with pytest.raises(RuntimeError, match="boom"):
        run_reporting_errors(fails(RuntimeError("boom")), debug=True)
    with pytest.raises(NotPromoted):
        run_reporting_errors(fails(NotPromoted("kept")), debug=True)

"""Every command has --help with an example, and the README shows it."""

import re

import pytest

from catvec.cli.main import build_parser, main

from conftest import REPO


def commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(sub.choices)


def test_the_expected_commands_exist():
    assert {"pretrain", "similar", "export", "finetune", "predict", "evaluate", "tune"} <= set(commands())


@pytest.mark.parametrize("name", commands())
def test_help_has_an_example_and_readme_mentions_it(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert re.search(r"examples?:", text) and f"catvec {name}" in text
    assert f"catvec {name}" in (REPO / "README.md").read_text(encoding="utf-8")


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out

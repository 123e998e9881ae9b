"""The `catvec` command: parse, call one pipeline function, report.

Each command lives in catvec/cli/<command>.py and exposes `register(subparsers)`;
the helpers they share (flags from the config dataclasses, progress) are in
catvec/cli/options.py, so no command module imports this one.
Config flags are generated from the config dataclasses (catvec.base.config), so a field
`embedding_lr` is always `--embedding-lr`. User errors (CatvecError) print one line and
exit 2 (the exit codes live beside the errors, in catvec.base.errors); `--debug` shows
tracebacks. Heavy libraries load only inside commands. The flow scripts
(`python flows/pretrain.py`) reuse the option generation and `run_reporting_errors`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from catvec import __version__
from catvec.base.errors import EXIT_INTERNAL, EXIT_NOT_PROMOTED, EXIT_USER_ERROR, CatvecError
from catvec.cli import (evaluate, export, features, finetune, predict, pretrain, promote, recommend, similar,
                        tune, versions)
from catvec.cli.options import OneLineParser

# in the order `catvec --help` lists them
COMMANDS = (pretrain, similar, export, finetune, predict, evaluate, tune, recommend, versions, promote, features)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="catvec",
        description="Pretrained category embeddings: learn item vectors from behaviour logs, "
                    "then start a PyTorch tabular model's embedding layer from them.",
        epilog="Run `catvec COMMAND --help` for the options and an example of each command.",
    )
    parser.add_argument("--version", action="version", version=f"catvec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    debug = getattr(args, "debug", False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_reporting_errors(lambda: args.run(args), debug)


def run_reporting_errors(run, debug: bool = False) -> int:
    """The exit status of `run()` (None counts as 0). A failure prints one line on stderr, no
    traceback unless `debug`: a CatvecError its message and its exit_code (2, or 3 for
    NotPromoted), anything else EXIT_INTERNAL, Ctrl-C 130."""
    try:
        return int(run() or 0)
    except CatvecError as exc:
        if debug:
            raise
        label = "not promoted" if exc.exit_code == EXIT_NOT_PROMOTED else "error"
        print(f"catvec: {label}: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("catvec: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the edge: no traceback for the user unless asked
        if debug:
            raise
        print(f"catvec: internal error: {type(exc).__name__}: {one_line(str(exc))} "
              "(run again with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def one_line(message: str, limit: int = 800) -> str:
    """A message as one line: line breaks inside it (a column name can hold one) are escaped,
    and a message made long by a huge value keeps its start and its advice at the end."""
    message = message.replace("\r", "\\r").replace("\n", "\\n")
    return message if len(message) <= limit else message[:limit // 2] + " [...] " + message[-limit // 4:]


if __name__ == "__main__":
    sys.exit(main())

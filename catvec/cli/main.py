"""The `catvec` command: parse, call one pipeline function, report.

Each command family lives in catvec/cli/<name>.py and exposes `register(subparsers)`;
the helpers they share (flags from the config dataclasses, progress) are in
catvec/cli/options.py, so no command module imports this one.
Config flags are generated from the config dataclasses (catvec.base.config), so a field
`embedding_lr` is always `--embedding-lr`. User errors (CatvecError) print one line and
exit 2; `--debug` shows tracebacks. Heavy libraries load only inside commands.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from catvec import __version__

COMMAND_MODULES = (
    "catvec.cli.pretrain",
    "catvec.cli.similar",
    "catvec.cli.finetune",
    "catvec.cli.evaluate",
    "catvec.cli.recommend",
    "catvec.cli.versions",
    "catvec.cli.features",
)

EXIT_USER_ERROR = 2
EXIT_INTERNAL = 1
EXIT_NOT_PROMOTED = 3  # a candidate version was written, latest did not move (catvec.base.errors.NotPromoted)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catvec",
        description="Pretrained category embeddings: learn item vectors from behaviour logs, "
                    "then start a PyTorch tabular model's embedding layer from them.",
        epilog="Run `catvec COMMAND --help` for the options and an example of each command.",
    )
    parser.add_argument("--version", action="version", version=f"catvec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
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
    from catvec.base.errors import CatvecError

    try:
        return int(args.run(args) or 0)
    except CatvecError as exc:
        if debug:
            raise
        label = "not promoted" if getattr(exc, "exit_code", None) == EXIT_NOT_PROMOTED else "error"
        print(f"catvec: {label}: {one_line(str(exc))}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_USER_ERROR)
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

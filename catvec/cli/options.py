"""What the command modules share: flags generated from the config dataclasses,
common flags, the scoring flags, printing, and per-epoch progress."""

from __future__ import annotations

import argparse
import dataclasses
import sys


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusals (an unknown flag, a value outside a field's
    `choices`) are one line on stderr and exit 2, like every other user error: argparse's
    own error() prints the whole usage first. Subcommand parsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"catvec: error: {self.prog}: {message}\n")


def add_common(parser: argparse.ArgumentParser, quiet: bool = True) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    if quiet:
        parser.add_argument("--quiet", "-q", action="store_true", help="print only errors and the result path")


def add_config_arguments(parser: argparse.ArgumentParser, cls, skip=(), positional=(), config: bool = True,
                         flow: bool = False) -> None:
    """One flag per dataclass field (`foo_bar` -> `--foo-bar`), default None = not given,
    in the command's one options section beside its own flags. Fields named in `positional`
    are optional positionals instead (`EVENTS`), in that order. flow=True: the help names a
    flow's default where it differs from the dataclass's (base.config.flow_default)."""
    from catvec.base.config import field_types, flow_default

    types_ = field_types(cls)
    for name in positional:
        parser.add_argument(name, nargs="?", metavar=name.upper(), help=f"the {name} option, as a positional")
    if config:
        parser.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file; flags override it")
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name in positional:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        where = "default"
        if flow and flow_default(f) != default:
            default, where = flow_default(f), "default in a flow"
        help_text = f"{f.metadata.get('help', '')} ({where}: {default!r})".replace("%", "%%")
        typ = types_[f.name]
        if typ not in (int, float, str, bool):  # Optional[x]: its base type
            typ = next((a for a in getattr(typ, "__args__", ()) if a is not type(None)), str)
        if typ is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            base = typ if typ in (int, float, str) else str
            choices = f.metadata.get("choices")
            parser.add_argument(flag, dest=f.name, type=base, default=None, help=help_text, choices=choices,
                                metavar="{" + ",".join(choices) + "}" if choices else f.name.upper())


def add_scoring_arguments(parser, topn: bool = True) -> None:
    """--k (or --topn), --scorer, --min-support, --no-cold: shared by similar and recommend."""
    if topn:
        parser.add_argument("--k", "--topn", dest="k", type=int, default=10,
                            help="how many items per key or query, as evaluate's --k (default: 10)")
    parser.add_argument("--scorer", default=None, metavar="{cosine,context}",
                        help="cosine: input . input (substitutes); context: input . context (what comes next / "
                             "goes with) (default: the version's, chosen when it was trained)")
    parser.add_argument("--min-support", type=int, default=None,
                        help="leave out items seen fewer times in training (default: the version's)")
    if not topn:  # evaluate scores held-out items with history: cold keys are candidates there
        return
    parser.add_argument("--no-cold", dest="cold", action="store_false",
                        help="leave out cold items (no history, vectors composed from their attributes; "
                             "by default they are candidates)")


def flags_given(cls, args: argparse.Namespace) -> dict:
    """The config fields given on the command line (flags and positionals), by name."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


def config_from_args(cls, args: argparse.Namespace):
    """The validated config: defaults < the --config file < the flags given."""
    from catvec.base.config import build_config

    return build_config(cls, getattr(args, "config", None), **flags_given(cls, args))


def options_given(cls, args: argparse.Namespace) -> dict:
    """What the command line said, as parameters: the --config file's options, overridden by
    the flags given (a flow script passes these to its flow, whose defaults fill the rest)."""
    from catvec.base.config import read_toml

    given = read_toml(args.config, cls) if getattr(args, "config", None) else {}
    return {**given, **flags_given(cls, args)}


def say(args, *lines: str) -> None:
    """Print to stdout unless --quiet."""
    if not getattr(args, "quiet", False):
        for line in lines:
            print(line, flush=True)


class EpochProgress:
    """Per-epoch progress on stderr: a tqdm bar on a terminal, one line per epoch otherwise
    (or, with every_epoch=False, one summary line at close: runs of hundreds of epochs)."""

    def __init__(self, total: int, label: str, quiet: bool = False, every_epoch: bool = True):
        self.quiet = quiet
        self.bar = None
        self.label = label
        self.tty = not quiet and sys.stderr.isatty()
        self.every_epoch = every_epoch
        self.last = None  # (epoch, total, text) not yet printed

    def __call__(self, epoch: int, total: int, info: dict) -> None:
        if self.quiet:
            return
        text = " ".join(f"{k}={_fmt(v)}" for k, v in info.items() if k != "epoch")
        if self.bar is None and self.tty:  # the total is known once training starts (epochs may be tuned)
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.label, unit="epoch", file=sys.stderr, leave=True)
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.update(1)
        elif self.every_epoch:
            print(f"{self.label}: epoch {epoch}/{total} {text}", file=sys.stderr, flush=True)
        else:
            self.last = (epoch, total, text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.last is not None:
            epoch, total, text = self.last
            print(f"{self.label}: {epoch} epochs (of at most {total}); last {text}", file=sys.stderr, flush=True)
            self.last = None


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

"""Configuration machinery: dataclass defaults < TOML file < CLI flag / flow parameter.

One flat dataclass per command (catvec.pretraining.config, catvec.finetuning.config). Field
names are the names everywhere: `embedding_lr` is `--embedding-lr` on the CLI,
`embedding_lr` in TOML and in a flow's parameters. Every config is validated before any
work starts (`validate()` raises CatvecError). Each field names its group once (`opt(...,
group="skipgram")`); `config_group` derives a small frozen object per group, which is what
the steps take. Allowed values (`choices=`) are declared once, read by argparse and by
validation alike.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import tomllib
import types
import typing
from dataclasses import field
from pathlib import Path

from catvec.base.errors import CatvecError



def opt(default, help: str, group: str = "", choices: tuple = (), **extra):
    """A config field with its help text (shown by --help and in the docs), the group that
    holds it and, for a closed set of values, the allowed ones."""
    meta = {"help": help, "group": group, **extra}
    if choices:
        meta["choices"] = tuple(choices)
    return field(default=default, metadata=meta)


def config_group(cls, name: str):
    """Class decorator: a frozen dataclass of the fields of `cls` whose group is `name`
    (same names, types and defaults), with `Group.of(cfg)` to cut it from a config.
    Methods and properties written in the decorated class are kept. Example:

        @config_group(PretrainConfig, "skipgram")
        class SkipGram:
            @property
            def effective_workers(self) -> int: ...

        SkipGram.of(cfg).dim == cfg.dim
    """
    types_ = field_types(cls)
    members = [f for f in dataclasses.fields(cls) if f.metadata.get("group") == name]
    if not members:
        raise ValueError(f"{cls.__name__} has no field in group {name!r}")

    def make(group_cls):
        namespace = {k: v for k, v in vars(group_cls).items() if k not in ("__dict__", "__weakref__")}
        specs = [(f.name, types_[f.name], field(default=f.default, metadata=f.metadata)) for f in members]
        made = dataclasses.make_dataclass(group_cls.__name__, specs, namespace=namespace, frozen=True)
        made.__module__ = group_cls.__module__
        made.__qualname__ = group_cls.__qualname__
        made.group_name = name
        made.of = classmethod(lambda c, cfg: c(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(c)}))
        return made

    return make


def group_names(cls) -> dict[str, list[str]]:
    """group -> its field names, in declaration order."""
    out: dict[str, list[str]] = {}
    for f in dataclasses.fields(cls):
        out.setdefault(f.metadata.get("group", ""), []).append(f.name)
    return out


def export_formats(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(s|sec|m|min|h|d|w)?\s*")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, name: str = "duration") -> float:
    """'30m' -> 1800.0 seconds. Units: s, m, h, d, w; a unit is required (is 30 seconds or minutes?)."""
    match = _DURATION.fullmatch(str(text))
    if not match or float(match.group(1)) <= 0:
        raise CatvecError(f"{name}: cannot read {text!r} as a positive duration; write e.g. 30s, 30m, 2h or 1d")
    if match.group(2) is None:
        number = match.group(1)
        raise CatvecError(f"{name}: {number} has no unit; write {number}s, {number}m, {number}h or {number}d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?b?|b)?\s*", re.I)


def parse_size(text: str, name: str = "size") -> int:
    """'512MB' -> bytes (KB, MB, GB, TB as powers of 1024; KiB... also read). A unit is required."""
    match = _SIZE.fullmatch(str(text))
    if not match or float(match.group(1)) <= 0 or not match.group(2):
        raise CatvecError(f"{name}: cannot read {text!r} as a memory size; write e.g. 512MB or 4GB")
    power = "bkmgt".index(match.group(2)[0].lower())
    return int(float(match.group(1)) * 1024**power)


# ---- loading -----------------------------------------------------------------------

def field_types(cls) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def flow_default(f: dataclasses.Field):
    """A field's default in a scheduled flow: the dataclass default unless the field says
    otherwise (`strict`: a flow nobody watches refuses rather than warns)."""
    return f.metadata.get("flow_default", f.default)


def with_config_signature(cls):
    """Decorator: `fn(**fields)` gets the signature of cls's fields (names, defaults, types),
    so tools that read signatures, such as Prefect's flow parameters, see each field and
    its current default. Example:

        @with_config_signature(PretrainConfig)
        def pretrain_flow(**params): ...
    """
    types_ = field_types(cls)
    params = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=flow_default(f),
                                annotation=types_[f.name]) for f in dataclasses.fields(cls)]

    def apply(fn):
        signature = inspect.signature(fn)
        fn.__signature__ = inspect.Signature(params, return_annotation=signature.return_annotation)
        fn.__annotations__ = {**{p.name: p.annotation for p in params}, "return": signature.return_annotation}
        return fn

    return apply


def read_toml(path: str | Path, cls) -> dict:
    """Read a TOML config for `cls`: flat keys, or the same keys under a table named
    after the command (`[pretrain]`). Unknown keys and wrong types are errors."""
    path = Path(path)
    if not path.is_file():
        raise CatvecError(f"config file {path} not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatvecError(f"config file {path}: not valid TOML ({exc})") from None
    section = cls.__name__.removesuffix("Config").lower()
    if isinstance(data.get(section), dict):
        data = data[section]
    types_ = field_types(cls)
    for key, value in data.items():
        if key not in types_:
            close = difflib.get_close_matches(key.replace("-", "_"), list(types_), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CatvecError(f"config file {path}: unknown key {key!r}{hint}")
        if isinstance(value, list) and cls.__dataclass_fields__[key].metadata.get("list_ok"):
            if not all(isinstance(v, str) for v in value):
                raise CatvecError(f"config file {path}: {key} must be a list of paths, got {value!r}")
            value = ",".join(value)
        data[key] = _coerce(key, value, types_[key], f"config file {path}")
    return data


def build_config(cls, config_file: str | Path | None = None, **overrides):
    """defaults < TOML file < overrides (None means 'not given'), validated."""
    values = read_toml(config_file, cls) if config_file else {}
    if values:
        try:  # a bad value in the file is reported against the file
            cls(**values).validate()
        except CatvecError as exc:
            raise CatvecError(f"config file {config_file}: {exc}") from None
    types_ = field_types(cls)
    for key, value in overrides.items():
        if key not in types_:
            raise CatvecError(f"unknown option {key!r} for {cls.__name__}")
        if value is not None:
            values[key] = _coerce(key, value, types_[key], "option")
    return cls(**values).validate()


def _coerce(key, value, typ, where):
    base = _base_type(typ)
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is bool and not isinstance(value, bool):
        raise CatvecError(f"{where}: {key} must be true or false, got {value!r}")
    if base is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise CatvecError(f"{where}: {key} must be an integer, got {value!r}")
    if not isinstance(value, base):
        raise CatvecError(f"{where}: {key} must be {base.__name__}, got {value!r}")
    return value


def _base_type(typ):
    if isinstance(typ, types.UnionType) or typing.get_origin(typ) is typing.Union:
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return args[0]
    return typ


def _check_types(cfg) -> None:
    """Types, then the allowed values of fields that declare `choices`."""
    for key, typ in field_types(type(cfg)).items():
        value = getattr(cfg, key)
        if value is None and typ is not _base_type(typ):
            continue
        _coerce(key, value, typ, "option")
    for f in dataclasses.fields(cfg):
        if "choices" in f.metadata:
            _one_of(f.name, getattr(cfg, f.name), f.metadata["choices"])


def _at_least(name: str, value, low) -> None:
    if value < low:
        raise CatvecError(f"{name} must be >= {low}, got {value}")


def _at_most(name: str, value, high) -> None:
    if value > high:
        raise CatvecError(f"{name} must be <= {high:,}, got {value:,}; a larger value is taken for a typo "
                          "(hours of training or all memory)")


def apply_settings(cfg, values: dict, where: str, way_out: str = ""):
    """cfg with `values` read back from a file (a parent's manifest), each checked exactly
    as the same flag would be; a bad one is refused in one line naming `where` and the field,
    then `way_out` (default: replace that version, or give the flag).

    Example: apply_settings(cfg, {"window": 5}, "OUT/v1/manifest.json").window == 5
    """
    types_ = field_types(type(cfg))
    checked = {}
    for name, value in values.items():
        try:
            if name not in types_:
                raise CatvecError(f"unknown setting {name!r}")
            if value is not None or _base_type(types_[name]) is types_[name]:
                value = _coerce(name, value, types_[name], "setting")
            checked[name] = value
        except CatvecError as exc:
            raise _refused(where, name, value, exc, way_out) from None
    try:
        return dataclasses.replace(cfg, **checked).validate()
    except CatvecError as exc:
        for name, value in checked.items():  # name the field that is wrong on its own
            try:
                dataclasses.replace(cfg, **{name: value}).validate()
            except CatvecError as alone:
                raise _refused(where, name, value, alone, way_out) from None
        raise CatvecError(f"{where}: the settings {', '.join(checked)} are refused together ({exc})") from None


def _refused(where: str, name: str, value, exc: CatvecError, way_out: str = "") -> CatvecError:
    way_out = way_out or (f"fix or replace that version (catvec promote OUT VERSION), or give "
                          f"--{name.replace('_', '-')} yourself")
    return CatvecError(f"{where}: the setting {name} = {value!r} is refused ({exc}); {way_out}")


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _one_of(name: str, value: str, allowed) -> None:
    if value not in allowed:
        shown = ", ".join(repr(a) if a == "" else a for a in allowed)
        raise CatvecError(f"{name} must be one of {shown}; got {value!r}")

"""Configuration: dataclass defaults < TOML file < CLI flag / flow parameter.

One flat dataclass per command. Field names are the names everywhere: `embedding_lr` is
`--embedding-lr` on the CLI, `embedding_lr` in TOML and in a flow's parameters. Every
config is validated before any work starts (`validate()` raises CatvecError).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from catvec.base.errors import CatvecError

# holdout mode -> how many of each user's last items are kept out of training
HOLDOUT_MODES = {"none": 0, "last": 1, "last2": 2, "basket": 2}
SAMPLE_EVENTS = Path(__file__).resolve().parents[2] / "data" / "events.csv"


def opt(default, help: str, **extra):
    """A config field with its help text (shown by --help and in the docs)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class PretrainConfig:
    """Everything `catvec pretrain` and the pretrain flow take."""

    # input
    events: str = opt("", "events: a .csv, .tsv or .parquet file, a folder of Parquet parts (hive partitions "
                          "such as date=2026-10-01/), a glob, a URL (file://, s3://, ...) or a comma list of "
                          "these (a list in TOML); empty = the bundled sample", list_ok=True)
    out: str = opt("artifacts", "output directory; each run adds a version and moves OUT/latest")
    user_col: str = opt("user_id", "user column")
    item_col: str = opt("item_id", "item (category) column")
    time_col: str = opt("timestamp", "time column: epoch seconds/ms or ISO-8601 text; '' = file order")
    session_col: str = opt("", "optional session column; sequences are (user, session)")
    basket_col: str = opt("", "basket mode: group unordered items by this column (order id)")
    sep: str = opt("", "CSV delimiter, one character ('\\t' or 'tab' for a tab); empty = ',' or tab for .tsv")
    time_unit: str = opt("auto", "unit of numeric times: auto, s, ms, us")
    time_format: str = opt("", "strftime format of text times that are not ISO-8601, e.g. %d/%m/%Y %H:%M; "
                               "empty = ISO-8601 or epoch numbers only")
    drop_nulls: bool = opt(False, "drop events with an empty user/item/time instead of refusing the file")
    since: str = opt("", "keep events at or after this ISO-8601 date or time (naive = UTC); also skips "
                         "date partitions before it")
    until: str = opt("", "keep events at or before this ISO-8601 date (the whole day) or time")
    # extraction
    shards: int = opt(0, "extract in this many shards of whole users, one at a time (local) or in parallel "
                         "(dask); 0 = from --memory and the input size")
    memory: str = opt("", "memory for one shard's extraction, e.g. 512MB or 4GB; empty = a quarter of this "
                          "machine's memory")
    engine: str = opt("local", "where shards are extracted: local (this process) or dask (a dask.distributed "
                               "cluster, --scheduler; pip install catvec[dask])")
    scheduler: str = opt("", "dask scheduler address (tcp://host:8786) for --engine dask")
    session_gap: str = opt("", "split a user's history after this inactivity gap, e.g. 30m, 2h, 1d")
    collapse_repeats: bool = opt(True, "collapse immediate repeats of the same item")
    min_count: int = opt(1, "drop items seen in fewer events than this")
    min_sequence_length: int = opt(2, "drop sequences shorter than this")
    max_sequence_length: int = opt(10000, "split longer sequences into chunks (gensim's limit is 10000)")
    holdout: str = opt("none", "'last' keeps each user's last item out of training and scores next-item "
                               "prediction on it; 'last2' also keeps the one before it (the validation item); "
                               "'basket' hides one item of one in ten baskets (test) and of another one in ten (valid); "
                               "see basket_holdout_share")
    basket_holdout_share: int = opt(10, "with holdout basket: percent of the baskets (of 2+ items) whose hidden item "
                                        "is a test target, and as many again validation targets (1-45)")
    # training
    dim: int = opt(64, "vector size")
    window: int = opt(0, "context window (basket mode: at least the largest basket); 0 = chosen by tuning")
    epochs: int = opt(0, "passes over the corpus; 0 = chosen by tuning, from the corpus size")
    negative: int = opt(5, "negative samples per positive pair")
    ns_exponent: float | None = opt(None, "negative sampling exponent (0 = uniform, 1 = by frequency, <0 favours "
                                          "rare); empty = chosen by tuning")
    sample: float | None = opt(None, "downsampling threshold for frequent items (0 = off); empty = chosen by tuning")
    alpha: float = opt(0.025, "initial learning rate")
    min_alpha: float = opt(0.0001, "final learning rate")
    max_final_vocab: int = opt(0, "keep at most this many items, most frequent first (0 = no cap)")
    workers: int = opt(0, "training threads (0 = all cores); exact mode uses 1")
    seed: int = opt(1, "random seed")
    exact: bool = opt(False, "bit-identical vectors on repeated runs: one worker, fixed seed")
    # tuning: what is left empty / 0 above is chosen on a validation split
    tune: bool = opt(True, "choose the training settings left empty, the scorer and min_support on a "
                           "validation split before training (--no-tune: fixed fallbacks)")
    tune_events: int = opt(50000, "tuning trains on a random sample of users (or baskets) of about this many events")
    tune_search: str = opt("halving", "how tuning spends its trainings: halving (screen the candidates briefly, then "
                                      "the fallback and the best at full epochs; under one plain training) or "
                                      "full (five candidates at full epochs, about 4-5x)")
    scorer: str = opt("", "the version's default scorer: cosine (substitutes) or context (what comes next / "
                          "goes with); empty = chosen by tuning (context without it)")
    min_support: int = opt(0, "neighbour and recommendation lists leave out items seen fewer times; "
                              "0 = chosen by tuning (1 without it)")
    # evaluation and pictures
    query_last: int = opt(1, "with holdout: the query is the mean of the user's last N items")
    item_attributes: str = opt("", "optional CSV of item attributes (the item column + attribute columns): every "
                                   "key in it with no history gets vectors composed from its attributes "
                                   "(docs/cold_start.md); also colours the vector map")
    attribute_col: str = opt("", "column of item_attributes to colour the vector map by; empty = its second column")
    attribute_cols: str = opt("", "columns of item_attributes that compose cold vectors, comma list; empty = every "
                                  "column but the item column")
    attribute_sep: str = opt("|", "separator of multi-valued attribute cells (Action|Comedy); empty = one value per cell")
    attribute_blend: int = opt(3, "with item_attributes: an item seen n < 20 times keeps n/(n+this) of its learned "
                                  "vectors and takes the rest from its attributes; 0 = learned vectors only")
    # Off by default in the CLI and the library: matplotlib's import and one drawing cost about
    # a second per run, more than everything else catvec adds to gensim (docs/benchmarks.md).
    vector_map: bool | None = opt(None, "draw a 2D PCA map of the vectors (vector_map.png, about 1 s) into each "
                                        "version; empty = only with --item-attributes", flow_default=True)
    # output
    export: str = opt("", "also write interop files into the version: word2vec, projector (comma list)")
    keep: int = opt(0, "keep only the newest N versions (0 = keep all; latest is never deleted)")
    refresh: bool = opt(False, "ignore the corpus cache and extract again")
    strict: bool = opt(False, "refuse to publish a version that fails a sanity gate (too few keys, flat loss, "
                              "most events lost to filters) instead of warning", flow_default=True)
    # versions: each new version against its parent (OUT/latest when the run starts); docs/lifecycle.md
    align: bool = opt(True, "rotate the new vectors into the parent version's space (orthogonal Procrustes on "
                            "shared items), so models trained on the parent keep reading the same coordinates")
    align_min_count: int = opt(20, "anchors of the alignment and of the drift gate: shared items seen at least "
                                   "this many times in both versions")
    gate: bool = opt(True, "promotion gate: keep the new version as a candidate (latest does not move) when its "
                           "drift from the parent is far beyond seed noise or its held-out quality falls below "
                           "the parent's")
    gate_drift: float = opt(0.5, "refuse when neighbour overlap@10 with the parent is below this fraction of the "
                                 "overlap between two seeds on the same data")
    noise_sample: float = opt(0.2, "share of the parent's sequences the seed-noise baseline is measured on (two seeds "
                                   "on that sample, about 2x this share of a training); 1 = a second full training")
    gate_quality_se: float = opt(2.0, "refuse when held-out HR@10 is more than this many standard errors below "
                                      "the parent's on the same items")
    gate_lost_keys: float = opt(0.1, "refuse when more than this share of the parent's keys is gone from the new "
                                      "version (1 = never)")
    gate_lost_traffic: float = opt(0.02, "refuse when the keys gone from the new version carried more than this "
                                         "share of the parent's training events (1 = never)")
    gate_new_traffic: float = opt(0.2, "refuse when keys the parent did not have carry more than this share of "
                                       "the new version's training events (1 = never)")
    gate_new_key: float = opt(0.05, "refuse when one key the parent did not have carries more than this share of "
                                    "the new version's training events: a flood (1 = never)")
    force: bool = opt(False, "publish even when the promotion gate refuses (the refusal is still recorded)")
    warm_start: bool = opt(False, "start known items from the parent's input and context vectors; new items start fresh")
    retune: bool = opt(False, "with a parent, choose the settings left open again (tuning) instead of keeping the "
                              "parent's; other settings are another space, so expect the drift gate to object")

    @property
    def draws_map(self) -> bool:
        """Whether a version gets vector_map.png: asked for, or implied by item attributes."""
        return bool(self.item_attributes) if self.vector_map is None else self.vector_map

    def validate(self) -> "PretrainConfig":
        _check_types(self)
        for name in ("min_count", "min_sequence_length", "dim", "negative", "query_last"):
            _at_least(name, getattr(self, name), 1)
        _at_least("max_sequence_length", self.max_sequence_length, 2)
        _at_least("tune_events", self.tune_events, 100)
        for name in ("max_final_vocab", "workers", "keep", "window", "epochs", "min_support", "attribute_blend"):
            _at_least(name, getattr(self, name), 0)
        for name, high in PRETRAIN_LIMITS.items():
            _at_most(name, getattr(self, name), high)
        _at_least("align_min_count", self.align_min_count, 1)
        if not 0 <= self.gate_drift <= 1:
            raise CatvecError(f"gate_drift must be between 0 and 1 (a fraction of the seed-noise overlap); got {self.gate_drift}")
        for name in ("gate_lost_keys", "gate_lost_traffic", "gate_new_traffic", "gate_new_key"):
            if not 0 <= getattr(self, name) <= 1:
                raise CatvecError(f"{name} must be between 0 and 1 (a share; 1 turns the check off); "
                                  f"got {getattr(self, name)}")
        if not 0 < self.noise_sample <= 1:
            raise CatvecError(f"noise_sample must be above 0 and at most 1 (a share of the parent's sequences); "
                              f"got {self.noise_sample}")
        if self.gate_quality_se < 0:
            raise CatvecError(f"gate_quality_se must be >= 0, got {self.gate_quality_se}")
        if not 1 <= self.basket_holdout_share <= 45:
            raise CatvecError(f"basket_holdout_share must be a percent between 1 and 45 (as many again are validation "
                              f"baskets); got {self.basket_holdout_share}")
        if self.tune_search not in ("halving", "full"):
            raise CatvecError(f"tune_search must be halving or full; got {self.tune_search!r}")
        if self.scorer not in ("", "cosine", "context"):
            raise CatvecError(f"scorer must be cosine or context (or empty: chosen by tuning); got {self.scorer!r}")
        for name in ("sample", "alpha", "min_alpha"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise CatvecError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.alpha <= 0:
            raise CatvecError(f"alpha must be > 0, got {self.alpha}")
        if self.time_unit not in ("auto", "s", "ms", "us"):
            raise CatvecError(f"time_unit must be one of auto, s, ms, us; got {self.time_unit!r}")
        if self.holdout not in HOLDOUT_MODES:
            raise CatvecError(f"holdout must be one of {', '.join(HOLDOUT_MODES)}; got {self.holdout!r}")
        if self.item_attributes and not Path(self.item_attributes).is_file():
            raise CatvecError(f"item_attributes: file {self.item_attributes} not found; pass a CSV with the item column")
        if self.attribute_col and not self.item_attributes:
            raise CatvecError("attribute_col needs item_attributes (the CSV that holds that column)")
        if self.attribute_cols and not self.item_attributes:
            raise CatvecError("attribute_cols needs item_attributes (the CSV that holds those columns)")
        if self.time_format and "%" not in self.time_format:
            raise CatvecError(f"time_format: {self.time_format!r} is not a strftime format; write e.g. %d/%m/%Y %H:%M")
        from catvec.base.tables import separator

        separator(self.sep)
        self.session_gap_seconds  # noqa: B018  (parses, or raises the clear error)
        if self.basket_col and (self.session_col or self.session_gap):
            raise CatvecError("basket_col cannot be combined with session_col or session_gap: baskets are the groups")
        if self.basket_col and self.holdout in ("last", "last2"):
            raise CatvecError(f"holdout {self.holdout} applies to ordered histories; in basket mode use holdout basket")
        if self.holdout == "basket" and not self.basket_col:
            raise CatvecError("holdout basket needs basket_col (the basket / order id column)")
        for fmt in export_formats(self.export):
            if fmt not in ("word2vec", "projector"):
                raise CatvecError(f"export: unknown format {fmt!r}; use word2vec and/or projector")
        if not self.out:
            raise CatvecError("out must name an output directory")
        _at_least("shards", self.shards, 0)
        _one_of("engine", self.engine, ("local", "dask"))
        if self.engine == "dask" and not self.scheduler:
            raise CatvecError("engine dask needs a scheduler address: pass --scheduler tcp://HOST:8786")
        if self.scheduler and self.engine != "dask":
            raise CatvecError(f"scheduler {self.scheduler!r} is used by engine dask only; pass --engine dask")
        self.memory_bytes  # noqa: B018  (parses, or raises the clear error)
        return self

    @property
    def memory_bytes(self) -> int | None:
        """memory in bytes (None: a quarter of this machine's memory), parsed here and nowhere else."""
        return parse_size(self.memory, "memory") if self.memory else None

    @property
    def events_path(self) -> Path:
        return Path(self.events) if self.events else SAMPLE_EVENTS

    @property
    def session_gap_seconds(self) -> float | None:
        """session_gap in seconds (None: no gap), parsed here and nowhere else."""
        return parse_duration(self.session_gap, "session_gap") if self.session_gap else None

    @property
    def effective_workers(self) -> int:
        if self.exact:
            return 1
        return self.workers or max(1, os.cpu_count() or 1)


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
    for key, typ in field_types(type(cfg)).items():
        value = getattr(cfg, key)
        if value is None and typ is not _base_type(typ):
            continue
        _coerce(key, value, typ, "option")


def _at_least(name: str, value, low) -> None:
    if value < low:
        raise CatvecError(f"{name} must be >= {low}, got {value}")


# Upper bounds where a typo costs hours or all memory (an extra zero or two); each lies far
# above any setting tuning chooses (window <= 30, epochs <= 100) or the docs suggest.
# Applied to flags, TOML, flow parameters and settings read back from files alike.
PRETRAIN_LIMITS = {"dim": 2048, "window": 1000, "epochs": 1000, "negative": 100, "query_last": 1000,
                   "max_sequence_length": 10000,  # gensim cuts longer sentences silently
                   "tune_events": 100_000_000, "shards": 100_000}
FINETUNE_LIMITS = {"epochs": 10_000, "batch_size": 1_000_000, "patience": 10_000}
MAX_LAYER = 16384  # MLP layer and embedding sizes (FinetuneConfig.hidden, emb_dims)


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


# ---- finetune ----------------------------------------------------------------------

FINETUNE_MODES = ("frozen", "finetune", "partial", "scratch")
FINETUNE_TASKS = ("auto", "regression", "binary", "multiclass")


@dataclass
class FinetuneConfig:
    """Everything `catvec finetune` and a finetune flow take."""

    # input and output
    vectors: str = opt("artifacts", "pretrained weights: a version dir, OUT/latest or OUT (its latest)")
    table: str = opt("", "labeled table (.csv, .tsv, .parquet)")
    target: str = opt("", "target column")
    out: str = opt("models", "output directory; each run adds a version and moves OUT/latest")
    cat_cols: str = opt("", "categorical columns, comma list; empty = the pretrained columns + text columns")
    cont_cols: str = opt("", "continuous columns, comma list; empty = the other numeric columns")
    pretrained_cols: str = opt("", "columns that start from pretrained vectors: COL or COL=DIR, comma list; "
                                   "empty = the categorical column that best matches the vectors' keys")
    task: str = opt("auto", "regression, binary, multiclass; auto = from the target's values")
    # split
    val_fraction: float = opt(0.2, "share of rows (or of group_col values) held out for validation")
    split_col: str = opt("", "column of train / val values that decides the split instead")
    group_col: str = opt("", "keep all rows of a value of this column on one side of the split")
    # model
    auto: str = opt("auto", "pick head, mode and regularisation on validation: on, off, or auto = on when "
                            "the training split has under 20,000 rows; flags given explicitly win")
    mode: str = opt("finetune", "pretrained rows: frozen, finetune, partial (only rows without a vector "
                                "train) or scratch (random init, the baseline)")
    normalize: str = opt("none", "pretrained rows as model inputs: none, or unit (each row scaled to length 1)")
    oov_init: str = opt("normal", "rows without a pretrained vector: normal (pretrained mean and std), mean, zeros")
    item_attributes: str = opt("", "CSV of item attributes keyed like the vectors' item column: a key with "
                                   "attributes but no vector starts from one composed from its attributes "
                                   "instead of the OOV init (docs/cold_start.md)")
    attribute_cols: str = opt("", "columns of item_attributes to compose from, comma list; empty = all but the key")
    attribute_sep: str = opt("|", "separator of multi-valued attribute cells; empty = one value per cell")
    pretrained_input: str = opt("input", "which pretrained vectors start the rows: input, context, or concat "
                                         "(unit input and unit context vectors side by side, twice the size)")
    hash_buckets: str = opt("", "N shared hashed rows for each categorical column's rare and unseen keys "
                                "(N, or COL=N comma list); empty = every key its own row")
    min_freq: int = opt(1, "with hash_buckets: keys in fewer training rows than this share the hashed rows")
    labeled_only: bool = opt(False, "vocab of labeled values only (default: also every pretrained key)")
    emb_size_rule: str = opt("fastai", "size of embeddings without vectors: fastai (1.6*n^0.56) or half (min(50, n/2))")
    emb_dims: str = opt("", "override embedding sizes: COL=DIM, comma list")
    hidden: str = opt("128,64", "MLP layer sizes, comma list ('' = linear model)")
    dropout: float = opt(0.1, "dropout after each MLP layer")
    emb_dropout: float = opt(0.0, "dropout on the concatenated embeddings")
    emb_l2: float = opt(0.0, "L2 penalty on the embedding rows used in each batch")
    interactions: bool = opt(False, "add element-wise products of same-size embeddings")
    key_stats: str = opt("auto", "per-key target statistics of the training rows (smoothed rate or mean, "
                                 "out of fold, and log count) as extra inputs: auto (binary and regression "
                                 "targets) or off")
    # training
    lr: float = opt(0.003, "learning rate of the MLP (and of randomly initialised embedding rows)")
    embedding_lr: float = opt(0.0001, "learning rate of pretrained embedding rows in finetune mode")
    weight_decay: float = opt(1e-4, "AdamW weight decay of the MLP weights (never of embeddings)")
    solver: str = opt("adam", "adam (mini-batches over epochs) or lbfgs (full batch to convergence; linear head "
                              "only, --hidden '', with --weight-decay as the head's L2 penalty; small tables)")
    epochs: int = opt(30, "most passes over the training rows")
    batch_size: int = opt(128, "rows per step")
    patience: int = opt(5, "stop after this many epochs without a better validation loss")
    unfreeze_after: int = opt(0, "frozen / partial: make every row trainable after this many epochs (0 = never)")
    sparse: bool = opt(False, "sparse embedding gradients with SparseAdam (very large vocabularies)")
    device: str = opt("auto", "where to train: auto (CUDA when torch sees a device), cpu or cuda")
    seed: int = opt(0, "random seed (split, init, shuffling, dropout)")
    exact: bool = opt(False, "deterministic: one thread and deterministic torch algorithms")
    threads: int = opt(0, "torch threads (0 = 1 for tables under 200,000 rows, else all cores)")
    compare: bool = opt(False, "also train the scratch baseline and fit a linear probe and kNN on the frozen "
                               "vectors and (extra catvec[gbm]) a GBM on the raw columns and with the vectors, "
                               "on the same split, and report them all; verdicts read the test split if any")
    metric: str = opt("", "validation metric that early stopping and comparisons read (rmse, mae, auc, "
                          "accuracy, macro_f1, log_loss); empty = the task's main one, stopping on val_loss")
    class_weight: str = opt("none", "none, or balanced: weight each class's loss by rows / (classes * its rows)")
    resume: bool = opt(False, "continue from the last checkpoint of an interrupted run with the same inputs")
    min_coverage: float = opt(0.5, "warn when fewer table rows than this have a pretrained vector")
    keep: int = opt(0, "keep only the newest N versions (0 = keep all; latest is never deleted)")
    warm_start: str = opt("", "continue a previous model (a model version dir, MODELS/latest or MODELS): its "
                              "head, roles and scaling are kept, its embedding rows move with the new vectors; "
                              "with --epochs 0 it is only scored with the new vectors swapped in")

    def validate(self) -> "FinetuneConfig":
        _check_types(self)
        for name in ("lr", "embedding_lr"):
            if not getattr(self, name) > 0:
                raise CatvecError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "emb_l2", "min_coverage"):
            if getattr(self, name) < 0:
                raise CatvecError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("patience", "min_freq"):
            _at_least(name, getattr(self, name), 1)
        if self.epochs == 0 and not self.warm_start:
            raise CatvecError("epochs 0 scores a model as it is and needs --warm-start MODEL; "
                              "pass --epochs 1 or more to train")
        _at_least("epochs", self.epochs, 0 if self.warm_start else 1)
        _at_least("batch_size", self.batch_size, 2)
        for name, high in FINETUNE_LIMITS.items():
            _at_most(name, getattr(self, name), high)
        for name in ("unfreeze_after", "keep", "threads"):
            _at_least(name, getattr(self, name), 0)
        if not 0 < self.val_fraction < 1:
            raise CatvecError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        for name in ("dropout", "emb_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise CatvecError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        _one_of("mode", self.mode, FINETUNE_MODES)
        _one_of("task", self.task, FINETUNE_TASKS)
        _one_of("oov_init", self.oov_init, ("normal", "mean", "zeros"))
        _one_of("pretrained_input", self.pretrained_input, ("input", "context", "concat"))
        if self.item_attributes and not Path(self.item_attributes).is_file():
            raise CatvecError(f"item_attributes: file {self.item_attributes} not found; pass a CSV with the item column")
        if self.attribute_cols and not self.item_attributes:
            raise CatvecError("attribute_cols needs item_attributes (the CSV that holds those columns)")
        _one_of("emb_size_rule", self.emb_size_rule, ("fastai", "half"))
        _one_of("class_weight", self.class_weight, ("none", "balanced"))
        _one_of("normalize", self.normalize, ("none", "unit"))
        _one_of("auto", self.auto, ("auto", "on", "off"))
        _one_of("key_stats", self.key_stats, ("auto", "off"))
        _one_of("solver", self.solver, ("adam", "lbfgs"))
        _one_of("device", self.device, ("auto", "cpu", "cuda"))
        if self.solver == "lbfgs" and self.hidden.strip():
            raise CatvecError(f"solver lbfgs trains a linear head only; pass --hidden '' (got {self.hidden!r})")
        if self.metric:
            _one_of("metric", self.metric, ("rmse", "mae", "auc", "accuracy", "macro_f1", "log_loss"))
        if self.split_col and self.group_col:
            raise CatvecError("split_col and group_col cannot be combined: the split column decides alone")
        if self.warm_start:
            if self.mode == "scratch":
                raise CatvecError("mode scratch starts from random rows; it cannot be combined with warm_start")
            if self.auto == "on":
                raise CatvecError("auto on searches new models; it cannot be combined with warm_start, "
                                  "which continues one model")
            if self.epochs == 0 and self.compare:
                raise CatvecError("epochs 0 scores the warm-started model without training; "
                                  "it cannot be combined with compare, whose scratch run needs epochs")
        if not self.out:
            raise CatvecError("out must name an output directory")
        self.hidden_sizes
        self.hash_bucket_map
        self.emb_dim_overrides
        self.pretrained_map
        return self

    @property
    def hidden_sizes(self) -> list[int]:
        try:
            sizes = [int(p) for p in comma_list(self.hidden)]
        except ValueError:
            raise CatvecError(f"hidden: expected layer sizes like 128,64; got {self.hidden!r}") from None
        if any(s < 1 for s in sizes):
            raise CatvecError(f"hidden: layer sizes must be >= 1; got {self.hidden!r}")
        if any(s > MAX_LAYER for s in sizes):
            raise CatvecError(f"hidden: layer sizes must be <= {MAX_LAYER:,} (a larger one is taken for a typo); "
                              f"got {self.hidden!r}")
        return sizes

    @property
    def hash_bucket_map(self) -> dict[str, int]:
        """column -> bucket count; the key '' means every categorical column."""
        out = {}
        for part in comma_list(self.hash_buckets):
            col, _, n = part.rpartition("=")
            try:
                count = int(n)
            except ValueError:
                raise CatvecError(f"hash_buckets: expected N or COL=N items like 1000 or item_id=1000; "
                                  f"got {part!r}") from None
            if count < 1:
                raise CatvecError(f"hash_buckets: the number of buckets must be >= 1, got {count} in {part!r}; "
                                  f"leave hash_buckets empty for one row per key")
            out[col.strip()] = count
        return out

    @property
    def emb_dim_overrides(self) -> dict[str, int]:
        out = {}
        for part in comma_list(self.emb_dims):
            col, _, dim = part.rpartition("=")
            if not col or not dim.strip().isdigit() or not 1 <= int(dim) <= MAX_LAYER:
                raise CatvecError(f"emb_dims: expected COL=DIM items like channel=4, DIM from 1 to {MAX_LAYER:,}; "
                                  f"got {part!r}")
            out[col.strip()] = int(dim)
        return out

    @property
    def pretrained_map(self) -> dict[str, str]:
        """column -> weight dir ('' entries use `vectors`)."""
        out = {}
        for part in comma_list(self.pretrained_cols):
            col, sep, directory = part.partition("=")
            if not col.strip() or (sep and not directory.strip()):
                raise CatvecError(f"pretrained_cols: expected COL or COL=DIR items; got {part!r}")
            out[col.strip()] = directory.strip() or self.vectors
        return out


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _one_of(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise CatvecError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")

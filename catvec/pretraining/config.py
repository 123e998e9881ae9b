"""`catvec pretrain`'s options: one flat dataclass, the names of flags, TOML keys and flow
parameters alike (the machinery is catvec.base.config)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from catvec.base.config import (_at_least, _at_most, _check_types, config_group, export_formats, group_names, opt,
                                parse_duration, parse_size)
from catvec.base.errors import CatvecError

# the bundled sample: package data (catvec/data), so an installed wheel has it too
SAMPLE_EVENTS = Path(str(resources.files("catvec").joinpath("data", "events.csv")))
# holdout mode -> how many of each user's last items are kept out of training
HOLDOUT_MODES = {"none": 0, "last": 1, "last2": 2, "basket": 2}

# Upper bounds where a typo costs hours or all memory (an extra zero or two); each lies far
# above any setting tuning chooses (window <= 30, epochs <= 100) or the docs suggest.
# Applied to flags, TOML, flow parameters and settings read back from files alike.
PRETRAIN_LIMITS = {"dim": 2048, "window": 1000, "epochs": 1000, "negative": 100, "query_last": 1000,
                   "max_sequence_length": 10000,  # gensim cuts longer sentences silently
                   "tune_events": 100_000_000, "shards": 100_000}


@dataclass
class PretrainConfig:
    """Everything `catvec pretrain` and the pretrain flow take."""

    # input
    events: str = opt("", "events: a .csv, .tsv or .parquet file, a folder of Parquet parts (hive partitions "
                          "such as date=2026-10-01/), a glob, a URL (file://, s3://, ...) or a comma list of "
                          "these (a list in TOML); empty = the bundled sample", list_ok=True, group="events")
    out: str = opt("artifacts", "output directory; each run adds a version and moves OUT/latest", group="output")
    user_col: str = opt("user_id", "user column", group="events")
    item_col: str = opt("item_id", "item (category) column", group="events")
    time_col: str = opt("timestamp", "time column: epoch seconds/ms or ISO-8601 text; '' = file order",
                        group="events")
    session_col: str = opt("", "optional session column; sequences are (user, session)", group="events")
    basket_col: str = opt("", "basket mode: group unordered items by this column (order id)", group="events")
    sep: str = opt("", "CSV delimiter, one character ('\\t' or 'tab' for a tab); empty = ',' or tab for .tsv",
                   group="events")
    time_unit: str = opt("auto", "unit of numeric epoch times (auto: by magnitude)",
                         group="events", choices=("auto", "s", "ms", "us"))
    time_format: str = opt("", "strftime format of text times that are not ISO-8601, e.g. %d/%m/%Y %H:%M; "
                               "empty = ISO-8601 or epoch numbers only", group="events")
    drop_nulls: bool = opt(False, "drop events with an empty user/item/time instead of refusing the file",
                           group="events")
    since: str = opt("", "keep events at or after this ISO-8601 date or time (naive = UTC); also skips "
                         "date partitions before it", group="events")
    until: str = opt("", "keep events at or before this ISO-8601 date (the whole day) or time", group="events")
    # extraction
    shards: int = opt(0, "extract in this many shards of whole users, one at a time (local) or in parallel "
                         "(dask); 0 = from --memory and the input size", group="extraction")
    memory: str = opt("", "memory for one shard's extraction, e.g. 512MB or 4GB; empty = a quarter of this "
                          "machine's memory", group="extraction")
    engine: str = opt("local", "where shards are extracted: local (this process) or dask (a dask.distributed "
                               "cluster, --scheduler; pip install catvec[dask])",
                               group="extraction", choices=("local", "dask"))
    scheduler: str = opt("", "dask scheduler address (tcp://host:8786) for --engine dask", group="extraction")
    # sequences
    session_gap: str = opt("", "split a user's history after this inactivity gap, e.g. 30m, 2h, 1d",
                           group="sequences")
    collapse_repeats: bool = opt(True, "collapse immediate repeats of the same item", group="sequences")
    min_count: int = opt(1, "drop items seen in fewer events than this", group="sequences")
    min_sequence_length: int = opt(2, "drop sequences shorter than this", group="sequences")
    max_sequence_length: int = opt(10000, "split longer sequences into chunks (gensim's limit is 10000)",
                                   group="sequences")
    holdout: str = opt("none", "'last' keeps each user's last item out of training and scores next-item "
                               "prediction on it; 'last2' also keeps the one before it (the validation item); "
                               "'basket' hides one item of one in ten baskets (test) and of another one in ten (valid); "
                               "see basket_holdout_share", group="sequences", choices=tuple(HOLDOUT_MODES))
    basket_holdout_share: int = opt(10, "with holdout basket: percent of the baskets (of 2+ items) whose hidden item "
                                        "is a test target, and as many again validation targets (1-45)",
                                        group="sequences")
    # training
    dim: int = opt(64, "vector size", group="skipgram")
    window: int = opt(0, "context window (basket mode: at least the largest basket); 0 = chosen by tuning",
                      group="skipgram")
    epochs: int = opt(0, "passes over the corpus; 0 = chosen by tuning, from the corpus size", group="skipgram")
    negative: int = opt(5, "negative samples per positive pair", group="skipgram")
    ns_exponent: float | None = opt(None, "negative sampling exponent (0 = uniform, 1 = by frequency, <0 favours "
                                          "rare); empty = chosen by tuning", group="skipgram")
    sample: float | None = opt(None, "downsampling threshold for frequent items (0 = off); empty = chosen by tuning",
                               group="skipgram")
    alpha: float = opt(0.025, "initial learning rate", group="skipgram")
    min_alpha: float = opt(0.0001, "final learning rate", group="skipgram")
    max_final_vocab: int = opt(0, "keep at most this many items, most frequent first (0 = no cap)", group="skipgram")
    workers: int = opt(0, "training threads (0 = all cores); exact mode uses 1", group="skipgram")
    seed: int = opt(1, "random seed", group="skipgram")
    exact: bool = opt(False, "bit-identical vectors on repeated runs: one worker, fixed seed", group="skipgram")
    # tuning: what is left empty / 0 above is chosen on a validation split
    tune: bool = opt(True, "choose the training settings left empty, the scorer and min_support on a "
                           "validation split before training (--no-tune: fixed fallbacks)", group="tuning")
    tune_events: int = opt(50000, "tuning trains on a random sample of users (or baskets) of about this many events",
                           group="tuning")
    tune_search: str = opt("halving", "how tuning spends its trainings: halving (screen the candidates briefly, then "
                                      "the fallback and the best at full epochs; under one plain training) or "
                                      "full (five candidates at full epochs, about 4-5x)",
                                      group="tuning", choices=("halving", "full"))
    scorer: str = opt("", "the version's default scorer: cosine (substitutes) or context (what comes next / "
                          "goes with); empty = chosen by tuning (context without it)",
                          group="scoring", choices=("", "cosine", "context"))
    min_support: int = opt(0, "neighbour and recommendation lists leave out items seen fewer times; "
                              "0 = chosen by tuning (1 without it)", group="scoring")
    # evaluation and pictures
    query_last: int = opt(1, "with holdout: the query is the mean of the user's last N items", group="scoring")
    item_attributes: str = opt("", "optional CSV of item attributes (the item column + attribute columns): every "
                                   "key in it with no history gets vectors composed from its attributes "
                                   "(docs/cold_start.md); also colours the vector map", group="attributes")
    attribute_col: str = opt("", "column of item_attributes to colour the vector map by; empty = its second column",
                             group="attributes")
    attribute_cols: str = opt("", "columns of item_attributes that compose cold vectors, comma list; empty = every "
                                  "column but the item column", group="attributes")
    attribute_sep: str = opt("|", "separator of multi-valued attribute cells (Action|Comedy); empty = one value per cell",
                             group="attributes")
    attribute_blend: int = opt(3, "with item_attributes: an item seen n < 20 times keeps n/(n+this) of its learned "
                                  "vectors and takes the rest from its attributes; 0 = learned vectors only",
                                  group="attributes")
    # Off by default in the CLI and the library: matplotlib's import and one drawing cost about
    # a second per run, more than everything else catvec adds to gensim (docs/benchmarks.md).
    vector_map: bool | None = opt(None, "draw a 2D PCA map of the vectors (vector_map.png, about 1 s) into each "
                                        "version; empty = only with --item-attributes", flow_default=True,
                                        group="output")
    # output
    export: str = opt("", "also write interop files into the version: word2vec, projector (comma list)",
                      group="output")
    keep: int = opt(0, "keep only the newest N versions (0 = keep all; latest is never deleted)", group="output")
    refresh: bool = opt(False, "ignore the corpus cache and extract again", group="output")
    strict: bool = opt(False, "refuse to publish a version that fails a sanity gate (too few keys, flat loss, "
                              "most events lost to filters) instead of warning", flow_default=True, group="output")
    # versions: each new version against its parent (OUT/latest when the run starts); docs/lifecycle.md
    align: bool = opt(True, "rotate the new vectors into the parent version's space (orthogonal Procrustes on "
                            "shared items), so models trained on the parent keep reading the same coordinates",
                            group="lineage")
    align_min_count: int = opt(20, "anchors of the alignment and of the drift gate: shared items seen at least "
                                   "this many times in both versions", group="lineage")
    gate: bool = opt(True, "promotion gate: keep the new version as a candidate (latest does not move) when its "
                           "drift from the parent is far beyond seed noise or its held-out quality falls below "
                           "the parent's", group="gate")
    gate_drift: float = opt(0.5, "refuse when neighbour overlap@10 with the parent is below this fraction of the "
                                 "overlap between two seeds on the same data", group="gate")
    noise_sample: float = opt(0.2, "share of the parent's sequences the seed-noise baseline is measured on (two seeds "
                                   "on that sample, about 2x this share of a training); 1 = a second full training",
                                   group="gate")
    gate_quality_se: float = opt(2.0, "refuse when held-out HR@10 is more than this many standard errors below "
                                      "the parent's on the same items", group="gate")
    gate_lost_keys: float = opt(0.1, "refuse when more than this share of the parent's keys is gone from the new "
                                      "version (1 = never)", group="gate")
    gate_lost_traffic: float = opt(0.02, "refuse when the keys gone from the new version carried more than this "
                                         "share of the parent's training events (1 = never)", group="gate")
    gate_new_traffic: float = opt(0.2, "refuse when keys the parent did not have carry more than this share of "
                                       "the new version's training events (1 = never)", group="gate")
    gate_new_key: float = opt(0.05, "refuse when one key the parent did not have carries more than this share of "
                                    "the new version's training events: a flood (1 = never)", group="gate")
    force: bool = opt(False, "publish even when the promotion gate refuses (the refusal is still recorded)",
                      group="gate")
    warm_start: bool = opt(False, "start known items from the parent's input and context vectors; new items start fresh",
                           group="lineage")
    retune: bool = opt(False, "with a parent, choose the settings left open again (tuning) instead of keeping the "
                              "parent's; other settings are another space, so expect the drift gate to object",
                              group="tuning")

    def validate(self) -> "PretrainConfig":
        _check_types(self)  # types, then every field's `choices`
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
            raise CatvecError(f"gate_drift must be between 0 and 1 (a fraction of the seed-noise overlap); "
                              f"got {self.gate_drift}")
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
        for name in ("sample", "alpha", "min_alpha"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise CatvecError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.alpha <= 0:
            raise CatvecError(f"alpha must be > 0, got {self.alpha}")
        if self.item_attributes and not Path(self.item_attributes).is_file():
            raise CatvecError(f"item_attributes: file {self.item_attributes} not found; pass a CSV with the item "
                              "column")
        if self.attribute_col and not self.item_attributes:
            raise CatvecError("attribute_col needs item_attributes (the CSV that holds that column)")
        if self.attribute_cols and not self.item_attributes:
            raise CatvecError("attribute_cols needs item_attributes (the CSV that holds those columns)")
        if self.time_format and "%" not in self.time_format:
            raise CatvecError(f"time_format: {self.time_format!r} is not a strftime format; write e.g. "
                              "%d/%m/%Y %H:%M")
        from catvec.base.tables import separator

        separator(self.sep)
        SequenceRules.of(self).session_gap_seconds  # noqa: B018  (parses, or raises the clear error)
        if self.basket_col and (self.session_col or self.session_gap):
            raise CatvecError("basket_col cannot be combined with session_col or session_gap: baskets are the groups")
        if self.basket_col and self.holdout in ("last", "last2"):
            raise CatvecError(f"holdout {self.holdout} applies to ordered histories; in basket mode use holdout "
                              "basket")
        if self.holdout == "basket" and not self.basket_col:
            raise CatvecError("holdout basket needs basket_col (the basket / order id column)")
        for fmt in export_formats(self.export):
            if fmt not in ("word2vec", "projector"):
                raise CatvecError(f"export: unknown format {fmt!r}; use word2vec and/or projector")
        if not self.out:
            raise CatvecError("out must name an output directory")
        _at_least("shards", self.shards, 0)
        if self.engine == "dask" and not self.scheduler:
            raise CatvecError("engine dask needs a scheduler address: pass --scheduler tcp://HOST:8786")
        if self.scheduler and self.engine != "dask":
            raise CatvecError(f"scheduler {self.scheduler!r} is used by engine dask only; pass --engine dask")
        Extraction.of(self).memory_bytes  # noqa: B018  (parses, or raises the clear error)
        return self

    @property
    def events_path(self) -> Path:
        """The input as a path, for messages at the edges (EventOptions.path)."""
        return EventOptions.of(self).path


# ---- groups: what each step takes (docs/architecture.md, "Parameter groups") -------------

@config_group(PretrainConfig, "events")
class EventOptions:
    """How the events are read: the input, its columns, delimiter and times, the time window."""

    @property
    def path(self) -> Path:
        return Path(self.events) if self.events else SAMPLE_EVENTS

    @property
    def basket(self) -> bool:
        return bool(self.basket_col)

    @property
    def key_col(self) -> str:
        """The column whose values hold whole sequences together: the basket, else the user."""
        return self.basket_col or self.user_col

    def reading(self) -> dict:
        """Every option but the input itself: what, beside the input's checksum, decides
        the events a file is read into."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "events"}


@config_group(PretrainConfig, "extraction")
class Extraction:
    """Where and in how many shards the corpus is extracted (never what it holds)."""

    @property
    def memory_bytes(self) -> int | None:
        """memory in bytes (None: a quarter of this machine's memory), parsed here and nowhere else."""
        return parse_size(self.memory, "memory") if self.memory else None


@config_group(PretrainConfig, "sequences")
class SequenceRules:
    """Events -> sequences: sessions, repeats, filters, lengths and the held-out items."""

    @property
    def session_gap_seconds(self) -> float | None:
        """session_gap in seconds (None: no gap), parsed here and nowhere else."""
        return parse_duration(self.session_gap, "session_gap") if self.session_gap else None

    @property
    def holdout_items(self) -> int:
        """How many of each user's last items the holdout keeps out of training."""
        return HOLDOUT_MODES[self.holdout]


@config_group(PretrainConfig, "skipgram")
class SkipGram:
    """gensim's skip-gram settings."""

    @property
    def effective_workers(self) -> int:
        if self.exact:
            return 1
        return self.workers or max(1, os.cpu_count() or 1)


@config_group(PretrainConfig, "tuning")
class Tuning:
    """Whether and how the open settings are chosen."""


@config_group(PretrainConfig, "scoring")
class Scoring:
    """The version's scorer, its support filter and the evaluation query."""


@config_group(PretrainConfig, "attributes")
class AttributeOptions:
    """Item attributes: cold keys' vectors and the map's colours."""


@config_group(PretrainConfig, "output")
class Output:
    """Where the version goes and what is written beside the vectors."""


@config_group(PretrainConfig, "lineage")
class Lineage:
    """A version against its parent: alignment and warm start."""


@config_group(PretrainConfig, "gate")
class Gate:
    """The promotion gate and its seed-noise baseline."""


GROUPS = (EventOptions, Extraction, SequenceRules, SkipGram, Tuning, Scoring, AttributeOptions, Output, Lineage, Gate)
# every field in exactly one group, and a class for each group (minGPT's configure_optimizers
# check): a field added without its group fails at import, not in a step that misses it
assert set(group_names(PretrainConfig)) == {g.group_name for g in GROUPS}, "a PretrainConfig field has no group class"

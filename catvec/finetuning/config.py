"""`catvec finetune`'s options: one flat dataclass, the names of flags, TOML keys and flow
parameters alike (the machinery is catvec.base.config).

Each field names its group once; the steps take the groups, never the whole config:

    Table    the labeled table, its columns and the weight dirs        load, roles
    Split    validation (and test) rows                                 vocabs, prepare
    Compare  what else trains on the same split: --auto, --compare       the training phase
    Init     how embedding rows start: mode, vectors' rows, OOV, buckets,
             attributes, a previous model                               load, vocabs, align, build
    Model    the network: MLP, embedding sizes, dropout, key statistics  build, prepare
    Fit      the fit loop and where it runs                              train, baselines
    Output   the model directory: OUT, resume, versions kept             composition

Derived values (`Model.hidden_sizes`, `Init.hash_bucket_map`, ...) live on the group that
owns their field. A fit reads `Setup` (init, model, fit), which is what --auto varies.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from catvec.base.config import _at_least, _at_most, _check_types, comma_list, config_group, group_names, opt
from catvec.base.errors import CatvecError

# Upper bounds where a typo costs hours or all memory (catvec.pretraining.config says more).
FINETUNE_LIMITS = {"epochs": 10_000, "batch_size": 1_000_000, "patience": 10_000}
MAX_LAYER = 16384  # MLP layer and embedding sizes (FinetuneConfig.hidden, emb_dims)

# closed sets of values, declared once: the fields' choices, and the checks of the public API
# (catvec.embedding, PretrainedEmbedding, align) and of a model dir's spec read them
FINETUNE_MODES = ("frozen", "finetune", "partial", "scratch")
OOV_INITS = ("normal", "mean", "zeros")
NORMALIZE = ("none", "unit")
SIZE_RULES = ("fastai", "half")
DEVICES = ("auto", "cpu", "cuda")
FINETUNE_TASKS = ("auto", "regression", "binary", "multiclass")
FINETUNE_METRICS = ("", "rmse", "mae", "auc", "accuracy", "macro_f1", "log_loss")


@dataclass
class FinetuneConfig:
    """Everything `catvec finetune` and a finetune flow take."""

    # input and output
    vectors: str = opt("artifacts", "pretrained weights: a version dir, OUT/latest or OUT (its latest)", group="table")
    table: str = opt("", "labeled table (.csv, .tsv, .parquet)", group="table")
    target: str = opt("", "target column", group="table")
    out: str = opt("models", "output directory; each run adds a version and moves OUT/latest", group="output")
    cat_cols: str = opt("", "categorical columns, comma list; empty = the pretrained columns + text columns",
                        group="table")
    cont_cols: str = opt("", "continuous columns, comma list; empty = the other numeric columns", group="table")
    pretrained_cols: str = opt("", "columns that start from pretrained vectors: COL or COL=DIR, comma list; "
                                   "empty = the categorical column that best matches the vectors' keys", group="table")
    task: str = opt("auto", "what the target is; auto = from its values", group="table", choices=FINETUNE_TASKS)
    # split
    val_fraction: float = opt(0.2, "share of rows (or of group_col values) held out for validation", group="split")
    split_col: str = opt("", "column of train / val values that decides the split instead", group="split")
    group_col: str = opt("", "keep all rows of a value of this column on one side of the split", group="split")
    # model
    auto: str = opt("auto", "pick head, mode and regularisation on validation; auto = on when the training "
                            "split has under 20,000 rows; flags given explicitly win", group="compare",
                    choices=("auto", "on", "off"))
    mode: str = opt("finetune", "pretrained rows: partial = only rows without a vector train; scratch = random "
                                "init, the baseline", group="init", choices=FINETUNE_MODES)
    normalize: str = opt("none", "pretrained rows as model inputs: as trained, or unit (each row scaled to length 1)",
                         group="init", choices=NORMALIZE)
    oov_init: str = opt("normal", "rows without a pretrained vector: normal = pretrained mean and std", group="init",
                        choices=OOV_INITS)
    item_attributes: str = opt("", "CSV of item attributes keyed like the vectors' item column: a key with "
                                   "attributes but no vector starts from one composed from its attributes "
                                   "instead of the OOV init (docs/cold_start.md)", group="init")
    attribute_cols: str = opt("", "columns of item_attributes to compose from, comma list; empty = all but the key",
                              group="init")
    attribute_sep: str = opt("|", "separator of multi-valued attribute cells; empty = one value per cell", group="init")
    pretrained_input: str = opt("input", "which pretrained vectors start the rows; concat = unit input and unit "
                                         "context vectors side by side, twice the size", group="init",
                                choices=("input", "context", "concat"))
    hash_buckets: str = opt("", "N shared hashed rows for each categorical column's rare and unseen keys "
                                "(N, or COL=N comma list); empty = every key its own row", group="init")
    min_freq: int = opt(1, "with hash_buckets: keys in fewer training rows than this share the hashed rows",
                        group="init")
    labeled_only: bool = opt(False, "vocab of labeled values only (default: also every pretrained key)", group="init")
    emb_size_rule: str = opt("fastai", "size of embeddings without vectors: fastai = 1.6*n^0.56, half = min(50, n/2)",
                             group="model", choices=SIZE_RULES)
    emb_dims: str = opt("", "override embedding sizes: COL=DIM, comma list", group="model")
    hidden: str = opt("128,64", "MLP layer sizes, comma list ('' = linear model)", group="model")
    dropout: float = opt(0.1, "dropout after each MLP layer", group="model")
    emb_dropout: float = opt(0.0, "dropout on the concatenated embeddings", group="model")
    emb_l2: float = opt(0.0, "L2 penalty on the embedding rows used in each batch", group="fit")
    interactions: bool = opt(False, "add element-wise products of same-size embeddings", group="model")
    key_stats: str = opt("auto", "per-key target statistics of the training rows (smoothed rate or mean, "
                                 "out of fold, and log count) as extra inputs; auto = for binary and regression "
                                 "targets", group="model", choices=("auto", "off"))
    blend: str = opt("auto", "after an --auto search: average the best candidates on validation and blend in a "
                             "kNN vote of the labeled rows nearest in the chosen one's pretrained embeddings (k by "
                             "leave-one-out, weight on validation), then score with the validation rows' labels "
                             "too (the vote's neighbours, the key statistics); auto = for binary and regression "
                             "targets", group="compare", choices=("auto", "off"))
    # training
    lr: float = opt(0.003, "learning rate of the MLP (and of randomly initialised embedding rows)", group="fit")
    embedding_lr: float = opt(0.0001, "learning rate of pretrained embedding rows in finetune mode", group="fit")
    weight_decay: float = opt(1e-4, "AdamW weight decay of the MLP weights (never of embeddings)", group="fit")
    solver: str = opt("adam", "adam = mini-batches over epochs; lbfgs = full batch to convergence (linear head "
                              "only, --hidden '', with --weight-decay as the head's L2 penalty; small tables)",
                      group="fit", choices=("adam", "lbfgs"))
    epochs: int = opt(30, "most passes over the training rows", group="fit")
    batch_size: int = opt(128, "rows per step", group="fit")
    patience: int = opt(5, "stop after this many epochs without a better validation loss", group="fit")
    unfreeze_after: int = opt(0, "frozen / partial: make every row trainable after this many epochs (0 = never)",
                              group="fit")
    sparse: bool = opt(False, "sparse embedding gradients with SparseAdam (very large vocabularies)", group="fit")
    device: str = opt("auto", "where to train; auto = CUDA when torch sees a device", group="fit",
                      choices=DEVICES)
    seed: int = opt(0, "random seed (split, init, shuffling, dropout)", group="fit")
    exact: bool = opt(False, "deterministic: one thread and deterministic torch algorithms", group="fit")
    threads: int = opt(0, "torch threads (0 = 1 for tables under 200,000 rows, else all cores)", group="fit")
    compare: bool = opt(False, "also train the scratch baseline and fit a linear probe and kNN on the frozen "
                               "vectors and (extra catvec[gbm]) a GBM on the raw columns and with the vectors, "
                               "on the same split, and report them all; verdicts read the test split if any",
                        group="compare")
    metric: str = opt("", "validation metric that early stopping and comparisons read; empty = the task's main "
                          "one, stopping on val_loss", group="fit", choices=FINETUNE_METRICS)
    class_weight: str = opt("none", "balanced: weight each class's loss by rows / (classes * its rows)", group="fit",
                            choices=("none", "balanced"))
    resume: bool = opt(False, "continue from the last checkpoint of an interrupted run with the same inputs",
                       group="output")
    min_coverage: float = opt(0.5, "warn when fewer table rows than this have a pretrained vector", group="init")
    keep: int = opt(0, "keep only the newest N versions (0 = keep all; latest is never deleted)", group="output")
    warm_start: str = opt("", "continue a previous model (a model version dir, MODELS/latest or MODELS): its "
                              "head, roles and scaling are kept, its embedding rows move with the new vectors; "
                              "with --epochs 0 it is only scored with the new vectors swapped in", group="init")

    def validate(self) -> "FinetuneConfig":
        _check_types(self)   # also the allowed values of every field that declares `choices`
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
        if self.item_attributes and not Path(self.item_attributes).is_file():
            raise CatvecError(f"item_attributes: file {self.item_attributes} not found; pass a CSV with the item column")
        if self.attribute_cols and not self.item_attributes:
            raise CatvecError("attribute_cols needs item_attributes (the CSV that holds those columns)")
        if self.solver == "lbfgs" and self.hidden.strip():
            raise CatvecError(f"solver lbfgs trains a linear head only; pass --hidden '' (got {self.hidden!r})")
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
        model, init = Model.of(self), Init.of(self)
        model.hidden_sizes, model.emb_dim_overrides, init.hash_bucket_map, Table.of(self).pretrained_map
        return self


@config_group(FinetuneConfig, "table")
class Table:
    """The labeled table, its columns' roles as given, and the weight dirs."""

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

    @property
    def weight_dirs(self) -> list[str]:
        """Every weight dir the run reads, once each."""
        return list(dict.fromkeys([*self.pretrained_map.values()] or [self.vectors]))


@config_group(FinetuneConfig, "split")
class Split:
    """Which rows validate (and, with a split column, test)."""


@config_group(FinetuneConfig, "compare")
class Compare:
    """What else trains on the same split and is compared on validation."""


@config_group(FinetuneConfig, "init")
class Init:
    """How embedding rows start: the mode, the vectors' rows, OOV rows, hash buckets,
    attributes of keys without a vector, a previous model."""

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

    def buckets_of(self, col: str) -> int:
        """Hashed rows of one column (0: every key its own row)."""
        buckets = self.hash_bucket_map
        return buckets.get(col, buckets.get("", 0))


@config_group(FinetuneConfig, "model")
class Model:
    """The network: MLP sizes, embedding sizes without vectors, dropout, extra inputs."""

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
    def emb_dim_overrides(self) -> dict[str, int]:
        out = {}
        for part in comma_list(self.emb_dims):
            col, _, dim = part.rpartition("=")
            if not col or not dim.strip().isdigit() or not 1 <= int(dim) <= MAX_LAYER:
                raise CatvecError(f"emb_dims: expected COL=DIM items like channel=4, DIM from 1 to {MAX_LAYER:,}; "
                                  f"got {part!r}")
            out[col.strip()] = int(dim)
        return out


@config_group(FinetuneConfig, "fit")
class Fit:
    """The fit loop (optimiser, epochs, stopping, class weights) and where it runs."""


@config_group(FinetuneConfig, "output")
class Output:
    """The model directory: OUT, resuming an interrupted run, versions kept."""


GROUPS = (Table, Split, Compare, Init, Model, Fit, Output)


@dataclass(frozen=True)
class Setup:
    """The settings one fit reads: how rows start, the network, the fit loop. --auto's
    candidates are Setups that differ in a few fields.

    Example: Setup.of(cfg).replace(mode="frozen", hidden="").model.hidden == ""
    """

    init: Init
    model: Model
    fit: Fit

    @classmethod
    def of(cls, cfg: FinetuneConfig) -> "Setup":
        return cls(Init.of(cfg), Model.of(cfg), Fit.of(cfg))

    @classmethod
    def defaults(cls) -> "Setup":
        """Every field at its default: a value that differs was given explicitly."""
        return cls(Init(), Model(), Fit())

    def value(self, name: str):
        """A field of any of the three groups, by name."""
        return getattr(getattr(self, _GROUP_OF[name]), name)

    def replace(self, **changes) -> "Setup":
        """Each change goes to the group that holds its field."""
        unknown = [n for n in changes if _GROUP_OF.get(n) not in ("init", "model", "fit")]
        if unknown:
            raise KeyError(f"not a setting of one fit: {', '.join(unknown)}")
        parts = {}
        for part in ("init", "model", "fit"):
            mine = {n: v for n, v in changes.items() if _GROUP_OF[n] == part}
            parts[part] = dataclasses.replace(getattr(self, part), **mine) if mine else getattr(self, part)
        return Setup(**parts)


_GROUP_OF = {name: group for group, names in group_names(FinetuneConfig).items() for name in names}

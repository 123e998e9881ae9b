"""`catvec finetune`'s options: one flat dataclass, the names of flags, TOML keys and flow
parameters alike (the machinery is catvec.base.config)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catvec.base.config import _at_least, _at_most, _check_types, _one_of, comma_list, opt
from catvec.base.errors import CatvecError

# Upper bounds where a typo costs hours or all memory (catvec.pretraining.config says more).
FINETUNE_LIMITS = {"epochs": 10_000, "batch_size": 1_000_000, "patience": 10_000}
MAX_LAYER = 16384  # MLP layer and embedding sizes (FinetuneConfig.hidden, emb_dims)



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
    blend: str = opt("auto", "after an --auto search: average the best candidates on validation and blend in a "
                             "kNN vote of the labeled rows nearest in the chosen one's pretrained embeddings (k by "
                             "leave-one-out, weight on validation), then score with the validation rows' labels "
                             "too (the vote's neighbours, the key statistics): auto (binary and regression "
                             "targets) or off",
                     group="model", choices=("auto", "off"))
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

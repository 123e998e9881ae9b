"""Labeled tables: reading, column roles, checks, splits, scaling and feature arrays.

A labeled table has categorical columns (keys through catvec.base.keys.normalize_keys),
continuous columns (numbers; standardised with statistics of the training split only)
and a target. CSV is read with every column as text, so ids never pass through float.
Every problem with the table is a CatvecError naming the file, column and value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from catvec.base.errors import CatvecError

TARGET_HINT = "fix the value, or use --task binary / multiclass for a class label"
SPLIT_VALUES = {"train": False, "val": True, "valid": True, "validation": True, "test": False}


@dataclass
class Roles:
    """Which column does what. `pretrained` maps a categorical column to its weight dir."""

    target: str
    task: str
    cat_cols: list[str]
    cont_cols: list[str]
    pretrained: dict[str, str] = field(default_factory=dict)
    classes: list[str] | None = None      # binary / multiclass: class keys, index = label


def read_table(source, what: str = "table"):
    """A CSV / TSV / Parquet file or a pandas / polars DataFrame -> (polars frame, name, checksum)."""
    from catvec.base.tables import read_frame

    return read_frame(source, what, "--table")


def require_columns(frame, columns, name: str, what: str = "column") -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CatvecError(f"{name}: no {what} {missing[0]!r}; the columns are {', '.join(frame.columns)}")


def numeric_column(frame, col: str, name: str, allow_missing: bool = False,
                   hint: str = "fix the value or list the column with --cat-cols") -> np.ndarray:
    """A column as float64 (n,); non-numbers and (unless allowed) empty/NaN values are errors."""
    import polars as pl

    s = frame[col]
    if s.dtype == pl.Utf8:
        text = s.str.strip_chars()
        values = text.cast(pl.Float64, strict=False)
        bad = values.is_null() & text.is_not_null() & (text != "") & ~text.str.to_lowercase().is_in(["nan", "na"])
        if bad.any():
            row = int(bad.arg_max())
            raise CatvecError(f"{name}: column {col!r} must be numeric but row {row + 1} holds {s[row]!r}; "
                              f"{hint}")
    elif s.dtype.is_numeric() or s.dtype == pl.Boolean or s.dtype == pl.Null:
        values = s.cast(pl.Float64)
    else:
        raise CatvecError(f"{name}: column {col!r} has type {s.dtype}, not numbers; {hint}")
    out = values.to_numpy().astype(np.float64)
    if not allow_missing:
        nan = np.isnan(out)
        if nan.any():
            raise CatvecError(f"{name}: column {col!r} has {int(nan.sum())} empty or NaN value(s) "
                              f"(first at row {int(np.argmax(nan)) + 1}); fill or drop those rows")
    return out


def is_numeric(frame, col: str) -> bool:
    try:
        values = numeric_column(frame, col, "", allow_missing=True)
    except CatvecError:
        return False
    return bool(np.isfinite(values).any())


def target_labels(frame, roles: Roles, name: str) -> np.ndarray:
    """The target as float32 (regression, binary: 0/1) or int64 class indices (multiclass)."""
    from catvec.base.keys import normalize_keys

    if roles.task == "regression":
        return numeric_column(frame, roles.target, name, hint=TARGET_HINT).astype(np.float32)
    keys = normalize_keys(frame[roles.target])
    if keys.null_count():
        row = int(keys.is_null().arg_max())
        raise CatvecError(f"{name}: target {roles.target!r} is empty at row {row + 1}; drop unlabeled rows")
    index = {k: i for i, k in enumerate(roles.classes)}
    codes = np.array([index.get(k, -1) for k in keys.to_list()], dtype=np.int64)
    return codes.astype(np.float32) if roles.task == "binary" else codes


def balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """rows / (classes * rows of the class) per class; classes without rows get 0: (n_classes,)."""
    counts = np.bincount(y.astype(np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def class_keys(frame, target: str, name: str) -> list[str]:
    from catvec.base.keys import normalize_keys

    return sorted(set(normalize_keys(frame[target]).drop_nulls().to_list()), key=_class_order)


def _class_order(key: str):
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


def split_rows(frame, val_fraction: float, seed: int, split_col: str = "", group_col: str = "",
               name: str = "table") -> np.ndarray:
    """bool (n,): True for validation rows.

    split_col: a column of train / val values decides. group_col: every row of a value
    goes to the same side (validation then measures values the model never trained on).
    """
    from catvec.base.keys import normalize_keys

    n = frame.height
    if split_col:
        values = normalize_keys(frame[split_col]).str.to_lowercase().to_list()
        bad = next((v for v in values if v not in SPLIT_VALUES), "")
        if bad != "":
            raise CatvecError(f"{name}: split column {split_col!r} holds {bad!r}; use train, val or test in every row")
        is_val = np.array([SPLIT_VALUES[v] for v in values], dtype=bool)
    elif group_col:
        groups = normalize_keys(frame[group_col]).fill_null("").to_numpy()
        uniq = np.unique(groups)
        rng = np.random.default_rng(seed)
        chosen = rng.permutation(len(uniq))[: max(1, round(val_fraction * len(uniq)))]
        is_val = np.isin(groups, uniq[chosen])
    else:
        rng = np.random.default_rng(seed)
        is_val = np.zeros(n, dtype=bool)
        is_val[rng.permutation(n)[: max(1, round(val_fraction * n))]] = True
    trained = ~is_val & ~test_rows(frame, split_col)
    if not trained.any() or not is_val.any():
        raise CatvecError(f"{name}: the split leaves no {'validation' if not is_val.any() else 'training'} rows; "
                          f"change val_fraction or the split column")
    if int((~is_val).sum()) < 2:  # a batch of one row cannot train (BatchNorm)
        raise CatvecError(f"{name}: the split leaves 1 training row; a model needs at least 2, so add rows "
                          "or lower val_fraction")
    return is_val


def test_rows(frame, split_col: str = "") -> np.ndarray:
    """bool (n,): rows a split column marks `test` (scored once at the end, never trained on)."""
    from catvec.base.keys import normalize_keys

    if not split_col:
        return np.zeros(frame.height, dtype=bool)
    return (normalize_keys(frame[split_col]).str.to_lowercase() == "test").fill_null(False).to_numpy()


@dataclass
class Scaler:
    """Standardisation with statistics from the training rows only."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, x: np.ndarray) -> "Scaler":
        """x (n_train, k) -> per-column mean and std (std 1 where a column is constant)."""
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        std = x.std(axis=0) if len(x) else np.ones(x.shape[1])
        std = np.where(std > 1e-12, std, 1.0)
        return cls([float(v) for v in mean], [float(v) for v in std])

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)


def feature_arrays(frame, roles: Roles, vocabs: dict, scaler: Scaler | None, name: str):
    """-> x_cat int64 (n, n_cat), x_cont float32 (n, n_cont) (scaled when a scaler is given)."""
    require_columns(frame, roles.cat_cols + roles.cont_cols, name)
    n = frame.height
    x_cat = np.zeros((n, len(roles.cat_cols)), dtype=np.int64)
    for j, col in enumerate(roles.cat_cols):
        x_cat[:, j] = vocabs[col].encode(frame[col])
    x_cont = np.zeros((n, len(roles.cont_cols)), dtype=np.float64)
    for j, col in enumerate(roles.cont_cols):
        x_cont[:, j] = numeric_column(frame, col, name)
    return x_cat, (scaler.transform(x_cont) if scaler else x_cont.astype(np.float32))


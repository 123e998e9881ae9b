"""Pretrained vectors as plain numeric columns of any table: `catvec features`.

A gradient-boosted model, a linear model or a notebook takes catvec's vectors through this
module: each key column named gets one numeric column per vector dimension, appended to the
table. One output row per input row, in the input order; a missing or unknown key gives
missing values (null), which GBMs handle, and is counted.

    which           the vectors of each key: input, context or concat (unit input and unit
                    context side by side), chosen as finetune's `--pretrained-input`
                    (catvec.base.vectors.select_vectors)
    k               optional reduction to k dimensions: a PCA fitted on the chosen vectors of
                    every key of the version (not on the table), so the same key gets the
                    same k numbers in any table
    columns         <col>_v0 .. <col>_v{dim-1}, or <col>_pc0 .. with k

Example:
    frame = catvec.features(table, vectors="artifacts/latest", cols=["item_id"], which="context", k=16)
    result = write_features("labels.csv", {"item_id": "artifacts/latest"}, "labels_vec.parquet")
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catvec.base.errors import CatvecError

log = logging.getLogger(__name__)

OUT_SUFFIXES = (".parquet", ".csv")


@dataclass
class ColumnReport:
    column: str
    vectors: str           # the weight dir (or "<Vectors>" for an object)
    dims: int              # columns appended
    rows: int
    unknown_rows: int      # rows whose key is missing or not in the vectors
    unknown_values: int    # distinct non-missing values not in the vectors

    def summary(self) -> str:
        return (f"{self.column}: {self.dims} columns from {self.vectors}; {self.unknown_rows}/{self.rows} rows "
                f"without a vector ({self.unknown_values} unknown values)")


@dataclass
class FeaturesResult:
    frame: object                    # polars.DataFrame: the table + the vector columns
    columns: list = field(default_factory=list)   # ColumnReport per key column
    path: Path | None = None


def parse_cols(spec: str, default_vectors: str | None) -> dict:
    """"item_id,user_id=users/latest" -> {"item_id": default_vectors, "user_id": "users/latest"}."""
    cols = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        col, _, vectors = part.partition("=")
        if not (vectors or default_vectors):
            raise CatvecError(f"--cols {part}: no vectors for it; pass --vectors DIR or write {part}=DIR")
        cols[col.strip()] = vectors.strip() or default_vectors
    if not cols:
        raise CatvecError("--cols: name at least one key column, e.g. --cols item_id")
    return cols


def vector_matrix(vectors, which: str, k: int | None, source: str) -> np.ndarray:
    """The (n_keys, dim or k) float32 rows appended for each key of `vectors`."""
    from catvec.base.vectors import select_vectors

    matrix = select_vectors(vectors, which, source).matrix
    if k is None:
        return matrix
    if not 1 <= k <= matrix.shape[1]:
        raise CatvecError(f"{source}: --dims {k} must be between 1 and the vectors' dimension {matrix.shape[1]}")
    return reduce_dims(matrix, k)


def reduce_dims(matrix: np.ndarray, k: int) -> np.ndarray:
    """PCA of the rows: (n, dim) -> (n, k) scores on the first k principal axes, with the
    sign of each axis fixed (largest loading positive) so reruns agree."""
    centered = matrix.astype(np.float64) - matrix.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)      # vt: (dim, dim)
    axes = vt[:k]                                                # (k, dim)
    signs = np.sign(axes[np.arange(k), np.abs(axes).argmax(axis=1)])
    return (centered @ (axes * signs[:, None]).T).astype(np.float32)


def features(frame, vectors=None, cols=None, which: str = "input", k: int | None = None, name: str = "table"):
    """The table with each key column's vectors appended as numeric columns (polars in and
    out; a pandas frame comes back as pandas). `cols`: column names (all use `vectors`) or
    {column: weight dir or Vectors}. Unknown keys give nulls.

    Example: catvec.features(df, vectors="artifacts/latest", cols=["item_id"], which="concat", k=8)
    """
    result = add_features(frame, _col_map(cols, vectors), which, k, name)
    for report in result.columns:
        log.info("%s", report.summary())
    if type(frame).__module__.startswith("pandas"):
        return result.frame.to_pandas()
    return result.frame


def add_features(frame, cols: dict, which: str = "input", k: int | None = None, name: str = "table") -> FeaturesResult:
    """`features` with the per-column reports: frame (polars, pandas or a file path) ->
    FeaturesResult. Every check runs before any column is built."""
    import polars as pl

    from catvec.base.keys import normalize_keys
    from catvec.base.vectors import Vectors, load_vectors
    from catvec.finetuning.labeled import read_table, require_columns

    if not cols:
        raise CatvecError("features: name at least one key column")
    if isinstance(frame, (str, os.PathLike)):
        frame, name, _ = read_table(frame)
    elif not isinstance(frame, pl.DataFrame):
        frame = pl.from_pandas(frame)
    require_columns(frame, list(cols), name)
    loaded = {}
    for source in dict.fromkeys(v for v in cols.values() if not isinstance(v, Vectors)):
        loaded[source] = load_vectors(source)
    prepared = []
    for col, source in cols.items():
        vectors = source if isinstance(source, Vectors) else loaded[source]
        label = "<Vectors>" if isinstance(source, Vectors) else str(source)
        keys = normalize_keys(frame[col])
        index = pl.DataFrame({"key": pl.Series(vectors.keys, dtype=pl.Utf8),
                              "row": np.arange(len(vectors), dtype=np.int64)})
        rows = (keys.to_frame("key").join(index, on="key", how="left", maintain_order="left")["row"]
                .fill_null(-1).to_numpy())                                         # (n_rows,)
        present = keys.is_not_null().to_numpy()
        if present.any() and not (rows >= 0).any():
            examples = ", ".join(repr(v) for v in keys.drop_nulls().unique(maintain_order=True).head(3).to_list())
            raise CatvecError(f"{name}: none of column {col!r}'s values has a vector in {label} (e.g. {examples}); "
                              f"check that the column holds the ids the vectors were trained on, or give {col}=DIR")
        matrix = vector_matrix(vectors, which, k, label)
        prepared.append((col, label, rows, matrix, keys))
    added = []
    reports = []
    taken = set(frame.columns)
    for col, label, rows, matrix, keys in prepared:
        values = matrix[np.maximum(rows, 0)]                                        # (n_rows, dims)
        names = [f"{col}_{'pc' if k else 'v'}{i}" for i in range(matrix.shape[1])]
        clash = next((n for n in names if n in taken), None)
        if clash:
            raise CatvecError(f"{name}: it already has a column {clash!r}; rename it or drop it before adding vectors")
        taken.update(names)
        known = rows >= 0
        added += [pl.Series(n, values[:, i]).set(pl.Series(~known), None) for i, n in enumerate(names)]
        unknown = keys.filter(pl.Series(~known)).drop_nulls().n_unique()
        reports.append(ColumnReport(col, label, len(names), len(rows), int((~known).sum()), int(unknown)))
    return FeaturesResult(frame.with_columns(added), reports)


def write_features(table, cols: dict, out, which: str = "input", k: int | None = None) -> FeaturesResult:
    """Read `table` (CSV, TSV, Parquet), append the vectors, write `out` (.parquet or .csv)
    whole or not at all."""
    from catvec.base.writes import check_writable, describe_os_error

    out = Path(out)
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise CatvecError(f"--out {out}: write .parquet or .csv")
    check_writable(out, "--out", file=True)
    result = add_features(table, cols, which, k)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        if out.suffix.lower() == ".parquet":
            result.frame.write_parquet(tmp)
        else:
            result.frame.write_csv(tmp)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CatvecError(f"{out}: cannot write the features ({describe_os_error(exc)})") from None
    result.path = out
    return result


def _col_map(cols, vectors) -> dict:
    if isinstance(cols, str):
        cols = [cols]
    if isinstance(cols, dict):
        return {c: v if v is not None else vectors for c, v in cols.items()}
    if vectors is None:
        raise CatvecError("features: pass vectors= (a weight dir or Vectors) or cols={column: vectors}")
    return {c: vectors for c in cols or []}

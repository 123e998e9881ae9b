"""Reading a table from a file or a DataFrame: the one reader events and labeled tables share.

CSV / TSV are read with every column as text, so ids never pass through float; Parquet
keeps its types. Folders of Parquet parts (hive partitions become columns), globs, comma
lists and URLs are resolved into parts by catvec.base.sources and read in part order. A UTF-8
byte-order mark and spaces around header names are removed. The delimiter is one
single-byte character; `\\t` or `tab` typed on a command line mean a tab. The checksum
is the sha256 of the file (computed while polars parses it), a digest over the parts of
a multi-part input (`Source.checksum`), or of the rows of a DataFrame.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from catvec.base.errors import CatvecError, InputNotFound
from catvec.base.fingerprint import checksum_of, file_checksum
from catvec.base.sources import (SEPARATOR_NAMES, first_line, is_multi_part,  # noqa: F401
                                 parquet_parts, resolve_source, separator)

READERS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_frame(source, what: str = "events", flag: str = "--events", sep: str = ""):
    """A CSV / TSV / Parquet path or a pandas / polars DataFrame -> (polars frame, name, checksum).

    Example: frame, name, checksum = read_frame("data/labels.csv", "table", "--table")
    """
    import polars as pl

    if isinstance(source, pl.DataFrame):
        return source, "<DataFrame>", frame_checksum(source)
    pd = sys.modules.get("pandas")  # a pandas DataFrame implies pandas is loaded: no import (~0.3 s) for a path
    if pd is not None and isinstance(source, pd.DataFrame):
        frame = _from_pandas(source)
        return frame, "<DataFrame>", frame_checksum(frame)
    if is_multi_part(source):
        src = resolve_source(source, what, flag, sep)
        return read_source(src), src.name, src.checksum()
    path = Path(source)
    name = str(path)
    if not path.exists():
        raise InputNotFound(f"{what} file {name} not found; pass {flag} PATH (CSV, TSV or Parquet)")
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise CatvecError(f"{name}: unknown format {path.suffix or '(no extension)'!r}; use .csv, .tsv or .parquet")
    if not os.access(path, os.R_OK):
        raise CatvecError(f"{name}: cannot read the file (permission denied)")
    if path.stat().st_size == 0:
        raise CatvecError(f"{name}: the file is empty; expected a header row and rows")
    # Hash the file while polars parses it: both release the GIL, so they overlap.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        checksum = pool.submit(file_checksum, path)
        try:
            if kind == "parquet":
                frame = pl.read_parquet(path)
            else:
                delimiter = separator(sep) or ("\t" if path.suffix.lower() == ".tsv" else ",")
                frame = pl.read_csv(path, separator=delimiter, infer_schema=False, encoding="utf8",
                                    truncate_ragged_lines=False)
        except pl.exceptions.NoDataError:
            raise CatvecError(f"{name}: the file is empty; expected a header row and rows") from None
        except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
            raise CatvecError(f"{name}: cannot read the {what} as {kind} ({first_line(exc)})") from None
        frame = _clean_header(frame)
        try:
            return frame, name, checksum.result()
        except OSError as exc:
            raise CatvecError(f"{name}: cannot read the file ({exc.strerror or exc})") from None


def _from_pandas(source):
    """A pandas DataFrame as polars; object columns that mix types ("595.0", 7) become keys."""
    import polars as pl

    from catvec.base.keys import to_key

    source = source.reset_index(drop=True)
    names = [str(c) for c in source.columns]
    if len(set(names)) < len(names):
        raise CatvecError(f"<DataFrame>: duplicated column name(s) {sorted({n for n in names if names.count(n) > 1})}; "
                          "rename them")
    try:
        return pl.from_pandas(source, include_index=False)
    except (TypeError, ValueError):  # pyarrow refuses an object column of mixed types
        return pl.DataFrame([pl.Series(name, [to_key(v) for v in source[c]], dtype=pl.Utf8)
                             if source[c].dtype == object else pl.from_pandas(source[c]).alias(name)
                             for name, c in zip(names, source.columns)])


def read_source(src, lf=None):
    """Every part of a multi-part Source (or the lazy frame `lf` over it) as one polars
    frame; the parts are checked first, so a bad part or a schema that differs is named."""
    import polars as pl

    src.check_parts()
    try:
        return _clean_header((src.scan() if lf is None else lf).collect())
    except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
        raise CatvecError(f"{src.name}: cannot read the {src.what} as {src.kind} ({first_line(exc)}); "
                          "every part needs the same columns and types") from None


def _clean_header(frame):
    return frame.rename({c: c.lstrip("\ufeff").strip() for c in frame.columns})


def source_checksum(spec) -> str:
    """"sha256:<hex>" of an input file, folder, glob or list (see catvec.base.sources)."""
    path = Path(str(spec))
    if not is_multi_part(spec) and not path.is_file():
        raise InputNotFound(f"events file {spec} not found; pass --events PATH (CSV, TSV or Parquet)")
    return resolve_source(spec).checksum()


def frame_checksum(frame) -> str:
    return checksum_of([",".join(frame.columns).encode(), frame.hash_rows(seed=0).to_numpy().tobytes()])

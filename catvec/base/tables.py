"""Reading a table from a file or a DataFrame: the one reader events and labeled tables share.

CSV / TSV are read with every column as text, so ids never pass through float; Parquet
keeps its types. A UTF-8 byte-order mark and spaces around header names are removed.
The checksum is the sha256 of the file (computed while polars parses it), or of the
rows of a DataFrame.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from catvec.base.errors import CatvecError, InputNotFound

READERS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_frame(source, what: str = "events", flag: str = "--events", sep: str = ""):
    """A CSV / TSV / Parquet path or a pandas / polars DataFrame -> (polars frame, name, checksum).

    Example: frame, name, checksum = read_frame("data/labels.csv", "table", "--table")
    """
    import polars as pl

    if isinstance(source, pl.DataFrame):
        return source, "<DataFrame>", frame_checksum(source)
    try:
        import pandas as pd

        if isinstance(source, pd.DataFrame):
            frame = pl.from_pandas(source.reset_index(drop=True), include_index=False)
            return frame, "<DataFrame>", frame_checksum(frame)
    except ImportError:  # pragma: no cover
        pass
    path = Path(source)
    name = str(path)
    if not path.exists():
        raise InputNotFound(f"{what} file {name} not found; pass {flag} PATH (CSV, TSV or Parquet)")
    if path.is_dir():
        raise CatvecError(f"{what} path {name} is a directory; pass a CSV, TSV or Parquet file")
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
                delimiter = sep or ("\t" if path.suffix.lower() == ".tsv" else ",")
                frame = pl.read_csv(path, separator=delimiter, infer_schema=False, encoding="utf8",
                                    truncate_ragged_lines=False)
        except pl.exceptions.NoDataError:
            raise CatvecError(f"{name}: the file is empty; expected a header row and rows") from None
        except (pl.exceptions.PolarsError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CatvecError(f"{name}: cannot read the {what} as {kind} ({first})") from None
        frame = frame.rename({c: c.lstrip("\ufeff").strip() for c in frame.columns})
        try:
            return frame, name, checksum.result()
        except OSError as exc:
            raise CatvecError(f"{name}: cannot read the file ({exc.strerror or exc})") from None


def file_checksum(path) -> str:
    """"sha256:<hex>" of a file: how manifests name an input."""
    from catvec.base.store import sha256_file

    return "sha256:" + sha256_file(path)


def frame_checksum(frame) -> str:
    digest = hashlib.sha256(",".join(frame.columns).encode())
    digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()

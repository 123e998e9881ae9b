"""Reading a table from a file or a DataFrame: the one reader events and labeled tables share.

CSV / TSV are read with every column as text, so ids never pass through float; Parquet
(a file, or a folder of .parquet parts read in name order) keeps its types. A UTF-8
byte-order mark and spaces around header names are removed. The delimiter is one
single-byte character; `\\t` or `tab` typed on a command line mean a tab. The checksum
is the sha256 of the file (computed while polars parses it), of a folder's parts in
order, or of the rows of a DataFrame.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from catvec.base.errors import CatvecError, InputNotFound

READERS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
# what people type for a tab on a command line or in TOML
SEPARATOR_NAMES = {"\\t": "\t", "tab": "\t", "\\x09": "\t", "space": " ", "semicolon": ";", "pipe": "|", "comma": ","}


def separator(text: str) -> str:
    """The CSV delimiter a --sep value means ("" = the default).

    Example: separator("tab") == separator(chr(92) + "t") == chr(9)
    """
    text = SEPARATOR_NAMES.get(text.lower() if len(text) > 1 else text, text)
    if len(text) > 1 or len(text.encode("utf-8")) > 1 or text in ('"', "\n", "\r"):
        raise CatvecError(f"sep: {text!r} is not a delimiter; use one single-byte character such as , ; | "
                          "or \\t for a tab")
    return text


def parquet_parts(folder: Path) -> list[Path]:
    """The .parquet files of a folder (a partitioned dataset), in name order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".parquet", ".pq")
                  and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts))


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
    path = Path(source)
    name = str(path)
    if not path.exists():
        raise InputNotFound(f"{what} file {name} not found; pass {flag} PATH (CSV, TSV or Parquet)")
    if path.is_dir():
        return _read_parquet_folder(path, what), name, folder_checksum(path)
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


def _read_parquet_folder(folder: Path, what: str):
    import polars as pl

    parts = parquet_parts(folder)
    if not parts:
        raise CatvecError(f"{what} path {folder} is a folder without .parquet files; pass a CSV, TSV or "
                          "Parquet file, or a folder of Parquet parts")
    try:
        frames = [pl.read_parquet(part) for part in parts]
        return _clean_header(pl.concat(frames, how="vertical"))
    except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
        raise CatvecError(f"{folder}: cannot read the {what} as a Parquet folder ({first_line(exc)}); "
                          "every part needs the same columns and types") from None


def _clean_header(frame):
    return frame.rename({c: c.lstrip("\ufeff").strip() for c in frame.columns})


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library messages can run to many lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def source_checksum(path) -> str:
    """"sha256:<hex>" of an input file or Parquet folder."""
    path = Path(path)
    return folder_checksum(path) if path.is_dir() else file_checksum(path)


def folder_checksum(folder: Path) -> str:
    """sha256 over the relative names and sha256s of a folder's Parquet parts, in order."""
    from catvec.base.store import sha256_file

    digest = hashlib.sha256()
    for part in parquet_parts(folder):
        digest.update(f"{part.relative_to(folder).as_posix()}\0{sha256_file(part)}\n".encode())
    return "sha256:" + digest.hexdigest()


def file_checksum(path) -> str:
    """"sha256:<hex>" of a file: how manifests name an input."""
    from catvec.base.store import sha256_file

    return "sha256:" + sha256_file(path)


def frame_checksum(frame) -> str:
    digest = hashlib.sha256(",".join(frame.columns).encode())
    digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()

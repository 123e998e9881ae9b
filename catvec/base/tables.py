"""Reading tables: the one module that finds and reads an input, for events and labeled
tables alike.

Where a table comes from: one file, a folder of Parquet parts (hive partitions such as
`date=2026-10-01/` become columns), a glob, a comma list of any of these, or URLs
(`file://`, `s3://`, ... through fsspec, catvec.base.remote), resolved into a `Source`: its
parts in a fixed order, their format, and a lazy polars scan over all of them. Or a pandas /
polars DataFrame.

How it is read: CSV / TSV with every column as text, so ids never pass through float;
Parquet keeps its types. A UTF-8 byte-order mark and spaces around header names are
removed. The delimiter is one single-byte character; `\\t` or `tab` typed on a command
line mean a tab.

Its checksum: the sha256 of a file (computed while polars parses it); for a multi-part
source a digest over each part's name (hive keys + file name) and its content sha256
(local files) or the size and ETag its file system reports (remote objects, never
downloaded for it), in part order: the same for the same files wherever they are listed
from; for a DataFrame, a digest of its rows. `input_state` tells, without reading the
bytes, whether an input changed during a run.

Example:
    frame, name, checksum = read_frame("data/labels.csv", "table", "--table")
    src = resolve_source("events/")          # a hive-partitioned folder
    src.scan().filter(pl.col("date") >= date(2026, 10, 1)).collect()
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from catvec.base.errors import CatvecError, InputNotFound, first_line
from catvec.base.fingerprint import checksum_of, file_checksum
from catvec.base.remote import GLOB_CHARS, is_remote, list_remote, remote_tag

READERS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
PARQUET = (".parquet", ".pq")
CSV = (".csv", ".tsv", ".txt")

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
    """"sha256:<hex>" of an input file, folder, glob or list (see resolve_source)."""
    path = Path(str(spec))
    if not is_multi_part(spec) and not path.is_file():
        raise InputNotFound(f"events file {spec} not found; pass --events PATH (CSV, TSV or Parquet)")
    return resolve_source(spec).checksum()


def frame_checksum(frame) -> str:
    return checksum_of([",".join(frame.columns).encode(), frame.hash_rows(seed=0).to_numpy().tobytes()])


# ---- sources: an input spec -> its parts ----------------------------------------------

@dataclass(frozen=True)
class Source:
    name: str                 # as given, for messages
    parts: tuple[str, ...]    # local paths or URLs, in order
    kind: str                 # "csv" | "parquet"
    hive: bool = False        # a part sits below key=value folders
    sep: str = ","
    what: str = "events"

    @property
    def hive_keys(self) -> list[str]:
        """The names of the key=value folders the parts sit in."""
        keys = {seg.split("=", 1)[0] for p in self.parts for seg in Path(_path_of(p)).parent.parts if "=" in seg}
        return sorted(keys) if self.hive else []

    @property
    def single_file(self) -> bool:
        return len(self.parts) == 1 and not self.hive and "://" not in self.parts[0]

    def scan(self, row_index: str | None = None, window=(None, None)):
        """A polars LazyFrame over every part (header names cleaned, hive keys as columns),
        without the date partitions that lie outside `window` ((lo, hi) in microseconds since
        the epoch, None for an open end; `partition_filter`)."""
        import polars as pl

        parts = list(self.parts)
        if self.kind == "parquet":
            lf = pl.scan_parquet(parts, hive_partitioning=self.hive, row_index_name=row_index)
        else:
            lf = pl.scan_csv(parts, separator=self.sep, infer_schema=False, encoding="utf8",
                             truncate_ragged_lines=False, row_index_name=row_index)
        schema = lf.collect_schema()
        cleaned = {c: c.lstrip("\ufeff").strip() for c in schema.names()}
        if any(k != v for k, v in cleaned.items()):
            lf = lf.rename({k: v for k, v in cleaned.items() if k != v})
        types = {cleaned[k]: dtype for k, dtype in schema.items()}
        predicate = partition_filter({k: types[k] for k in self.hive_keys if k in types}, window)
        return lf if predicate is None else lf.filter(predicate)

    def check_parts(self) -> dict:
        """Read every part's schema (a Parquet footer, a CSV header): names the part that
        cannot be read or whose columns differ from the first part's. Returns the schema."""
        import polars as pl

        first, first_schema = None, None
        for part in self.parts:
            try:
                if self.kind == "parquet":
                    schema = dict(pl.read_parquet_schema(part))
                else:
                    schema = dict(pl.scan_csv(part, separator=self.sep, infer_schema=False).collect_schema())
                    schema = {k.lstrip("\ufeff").strip(): v for k, v in schema.items()}
            except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
                raise CatvecError(f"{part}: cannot read this part of {self.name} as {self.kind} "
                                  f"({first_line(exc)}); fix or remove the file") from None
            if first_schema is None:
                first, first_schema = part, schema
            elif schema != first_schema:
                diff = sorted(set(schema.items()) ^ set(first_schema.items()), key=str)[:3]
                shape = "a Parquet folder" if self.kind == "parquet" else "a list of CSV files"
                raise CatvecError(f"{self.name}: cannot read the {self.what} as {shape}: {part} has columns that "
                                  f"differ from {first} ({', '.join(f'{k}: {v}' for k, v in diff)}); every part "
                                  "needs the same columns and types")
        return first_schema or {}

    def checksum(self) -> str:
        """"sha256:<hex>": one file's sha256, or a digest over the parts' names and hashes."""
        if self.single_file:
            return file_checksum(self.parts[0])
        return checksum_of(f"{part_name(part)}\0{part_hash}\n".encode()
                           for part, part_hash in zip(self.parts, _part_hashes(self.parts)))


def resolve_source(spec, what: str = "events", flag: str = "--events", sep: str = "") -> Source:
    """A path, folder, glob, URL or comma list of them (or a list) -> Source.

    Example: resolve_source("a.parquet,b.parquet").parts == ("a.parquet", "b.parquet")
    """
    pieces = _pieces(spec)
    parts: list[str] = []
    hive = False
    for piece in pieces:
        found, piece_hive = _expand(piece, what, flag)
        parts += found
        hive = hive or piece_hive
    kinds = {_kind(p) for p in parts}
    if None in kinds:
        bad = next(p for p in parts if _kind(p) is None)
        raise CatvecError(f"{bad}: unknown format {Path(_path_of(bad)).suffix or '(no extension)'!r}; "
                          "use .csv, .tsv or .parquet")
    if len(kinds) > 1:
        raise CatvecError(f"{what} {_name(spec)} mixes CSV and Parquet files; pass one format")
    kind = kinds.pop()
    if kind == "csv":
        delimiter = separator(sep) or ("\t" if all(p.lower().endswith(".tsv") for p in parts) else ",")
    else:
        delimiter = ","
    return Source(name=_name(spec), parts=tuple(parts), kind=kind, hive=hive, sep=delimiter, what=what)


def partition_filter(schema: dict, window):
    """A polars predicate on the date-typed hive keys of `schema` that skips partitions
    outside `window` (with a day's margin: a partition's date may be local time), or None."""
    import polars as pl

    from datetime import datetime, timedelta, timezone

    lo, hi = window
    predicate = None
    for col, dtype in schema.items():
        if dtype != pl.Date or (lo is None and hi is None):
            continue
        keep = pl.lit(True)
        if lo is not None:
            keep = keep & (pl.col(col) >= (datetime.fromtimestamp(lo / 1e6, timezone.utc) - timedelta(days=1)).date())
        if hi is not None:
            keep = keep & (pl.col(col) <= (datetime.fromtimestamp(hi / 1e6, timezone.utc) + timedelta(days=1)).date())
        predicate = keep if predicate is None else predicate & keep
    return predicate


def is_multi_part(spec) -> bool:
    """True when `spec` is more than one plain local file (a folder, glob, list or URL)."""
    if isinstance(spec, (list, tuple)):
        return True
    text = str(spec)
    if Path(text).is_file():
        return False
    return Path(text).is_dir() or "://" in text or "," in text or any(c in text for c in GLOB_CHARS)


def _pieces(spec) -> list[str]:
    if isinstance(spec, (list, tuple)):
        pieces = [str(p).strip() for p in spec]
    else:
        text = str(spec)
        # a path that holds a comma is one path; otherwise a comma separates paths
        pieces = [text] if Path(text).exists() else [p.strip() for p in text.split(",")]
    pieces = [p for p in pieces if p]
    if not pieces:
        raise CatvecError("events: no input given; pass --events PATH")
    return pieces


def _name(spec) -> str:
    return ",".join(str(p) for p in spec) if isinstance(spec, (list, tuple)) else str(spec)


def _expand(piece: str, what: str, flag: str) -> tuple[list[str], bool]:
    """One piece -> its parts (sorted) and whether they sit in hive partitions."""
    if is_remote(piece):
        return list_remote(piece, what, flag, PARQUET)
    local = piece[len("file://"):] if piece.startswith("file://") else piece
    if any(c in local for c in GLOB_CHARS):
        found = sorted(p for p in glob.glob(local, recursive=True) if os.path.isfile(p))
        if not found:
            raise InputNotFound(f"{what} pattern {piece} matches no file; pass {flag} PATH")
        return found, any("=" in part for p in found for part in Path(p).parent.parts)
    path = Path(local)
    if path.is_dir():
        found = [str(p) for p in parquet_parts(path)]
        if not found:
            raise CatvecError(f"{what} path {piece} is a folder without .parquet files; pass a CSV, TSV or "
                              "Parquet file, or a folder of Parquet parts")
        inside = [any("=" in seg for seg in Path(p).relative_to(path).parent.parts) for p in found]
        if any(inside) and not all(inside):
            loose = found[inside.index(False)]
            raise CatvecError(f"{piece}: {loose} lies outside the key=value partition folders of the other parts; "
                              "move it into a partition or out of the folder")
        return found, any(inside)
    if not path.exists():
        raise InputNotFound(f"{what} file {piece} not found; pass {flag} PATH (CSV, TSV or Parquet)")
    return [str(path)], False


def _kind(part: str) -> str | None:
    suffix = Path(_path_of(part)).suffix.lower()
    return "parquet" if suffix in PARQUET else "csv" if suffix in CSV else None


def _path_of(part: str) -> str:
    return part.split("://", 1)[1] if "://" in part else part


def parquet_parts(folder: Path) -> list[Path]:
    """The .parquet files of a folder (a partitioned dataset), in name order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PARQUET
                  and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts))


def part_name(part: str) -> str:
    """What a part is called in a checksum: its hive keys and file name, not where the folder lives."""
    path = Path(_path_of(part))
    return "/".join([s for s in path.parent.parts if "=" in s] + [path.name])


def _part_hashes(parts) -> list[str]:
    """Content sha256 of local parts (in threads: hashlib releases the GIL), size + ETag of remote ones."""
    from concurrent.futures import ThreadPoolExecutor

    def one(part: str) -> str:
        if is_remote(part):
            return "%s:%s" % remote_tag(part)
        return file_checksum(_path_of(part))

    try:
        with ThreadPoolExecutor(max_workers=min(8, len(parts))) as pool:
            return list(pool.map(one, parts))
    except OSError as exc:
        raise CatvecError(f"{getattr(exc, 'filename', '') or 'input'}: cannot read the file "
                          f"({exc.strerror or exc})") from None


def input_state(spec, sep: str = "") -> tuple:
    """What tells whether an input's bytes changed, without reading them: its parts (listed
    again, so a part added to a folder shows) with each local part's size, mtime and ctime
    (ns), inode and device, or a remote part's size and ETag. Taken before the checksum and compared
    after the input was read: a difference means the file changed during the run.

    Example: input_state("events.csv") == input_state("events.csv")  # nothing wrote to it
    """
    src = resolve_source(spec, sep=sep)
    return tuple((part, _part_state(part)) for part in src.parts)


def _part_state(part: str):
    if is_remote(part):
        return remote_tag(part)
    try:
        st = os.stat(_path_of(part))
    except OSError:
        return None  # gone: differs from any state it had
    # ctime too: a copy that keeps the mtime (cp -p, touch -r) still sets it
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

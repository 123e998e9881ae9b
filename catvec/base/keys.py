"""Category keys: the one function that turns values into string keys, and escaping.

Every category value (an item id in an events file, a value in a labeled table) becomes
a key through `normalize_keys`, so pretrain and finetune agree on what "123" is:

- strings are kept exactly (no stripping, no case folding); empty strings are missing;
  the one exception is an integral float written as text ("595.0", "-3.00"), which becomes
  the integer form ("595"), so a CSV written from a float column and the same ids in a
  Parquet float column give the same keys;
- integers become their decimal form;
- floats with an integral value become the integer form (a column with NaN that pandas
  read as float gives "123", never "123.0"); other floats keep their shortest repr;
- booleans become "true" / "false"; null / NaN is missing (None).

Keys may hold spaces, tabs, newlines or other control characters. Files that cannot
carry them (word2vec text, TSV) store them escaped with `escape_key`; `unescape_key`
restores them exactly.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata

import numpy as np

_NEEDS_ESCAPE = re.compile(r"[\\\s\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPED = re.compile(r"\\(\\|s|t|n|r|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")
_SIMPLE = {"\\": "\\\\", " ": "\\s", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_SIMPLE_BACK = {"\\": "\\", "s": " ", "t": "\t", "n": "\n", "r": "\r"}
# "595.0", "-3.00": an integral float written as text (pandas' to_csv of a float column)
_INTEGRAL_TEXT = r"^(-?)([0-9]+)\.0+$"  # polars (Rust) regex: $ is the very end


def to_key(value) -> str | None:
    """One value -> key, or None when missing. Example: to_key(123.0) == "123"."""
    if value is None:
        return None
    if isinstance(value, str):
        if value == "":
            return None
        match = re.fullmatch(_INTEGRAL_TEXT[1:-1], value)
        return _integral_text(match.group(1), match.group(2)) if match else value
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return repr(f)
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, bytes):
        return to_key(value.decode("utf-8"))
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def _integral_text(sign: str, digits: str) -> str:
    """"-007" from "-007.0": the digits kept as written (never through float), a zero unsigned."""
    return digits if sign == "" or set(digits) == {"0"} else sign + digits


def normalize_keys(column):
    """A column (polars / pandas Series, numpy array or list) -> polars Utf8 Series of keys.

    Missing values are null. Vectorised for the common dtypes.
    Example: normalize_keys(pd.Series([1.0, None, 3.0])).to_list() == ["1", None, "3"]
    """
    import polars as pl

    s = _to_polars(column)
    dtype = s.dtype
    if dtype == pl.Utf8 or dtype == pl.Categorical or dtype == pl.Enum:
        s = s.cast(pl.Utf8)
        if not s.len():
            return s
        # Both rules of key_expr need a "." or a leading "-": literal scans are far cheaper
        # than its regexes, and most id columns have neither.
        if not (s.str.contains(".", literal=True) | s.str.starts_with("-")).any():
            return s.set(s == "", None)
        return s.to_frame().select(key_expr(s.name, dtype)).to_series()
    if dtype == pl.Boolean:
        return s.map_elements(to_key, return_dtype=pl.Utf8)
    if dtype.is_integer():
        return s.cast(pl.Utf8)
    if dtype.is_float():
        s = s.fill_nan(None)
        integral = (s.round(0) == s) & (s.abs() < 2.0**63)
        as_int = s.cast(pl.Int64, strict=False).cast(pl.Utf8)
        other = s.map_elements(to_key, return_dtype=pl.Utf8, skip_nulls=True)
        return pl.select(pl.when(integral).then(as_int).otherwise(other)).to_series().alias(s.name)
    if dtype == pl.Null:
        return s.cast(pl.Utf8)
    return s.map_elements(to_key, return_dtype=pl.Utf8, skip_nulls=True)


def key_expr(name: str, dtype):
    """`normalize_keys` as a polars expression on column `name` of type `dtype`, for lazy
    scans (sharded extraction filters on the user key before anything is collected).

    Example: pl.scan_parquet(path).select(key_expr("user_id", pl.Int64))
    """
    import polars as pl

    col = pl.col(name)
    if dtype == pl.Utf8 or dtype == pl.Categorical or dtype == pl.Enum:
        text = col.cast(pl.Utf8)
        text = pl.when(text != "").then(text)
        # vectorised form of to_key's rule: "-007.0" -> "-007", and a zero loses its sign
        return text.str.replace(_INTEGRAL_TEXT, "${1}${2}").str.replace(r"^-(0+)$", "${1}").alias(name)
    if dtype.is_integer() or dtype == pl.Null:
        return col.cast(pl.Utf8)
    if dtype.is_float():
        value = col.fill_nan(None)
        integral = (value.round(0) == value) & (value.abs() < 2.0**63)
        return (pl.when(integral).then(value.cast(pl.Int64, strict=False).cast(pl.Utf8))
                .otherwise(value.map_elements(to_key, return_dtype=pl.Utf8, skip_nulls=True))).alias(name)
    return col.map_elements(to_key, return_dtype=pl.Utf8, skip_nulls=True)


def _to_polars(column):
    import polars as pl

    if isinstance(column, pl.Series):
        return column
    pd = sys.modules.get("pandas")  # a pandas Series implies pandas is loaded: no import for other columns
    if pd is not None and isinstance(column, pd.Series):
        if column.dtype == object:
            return pl.Series(column.name or "key", [to_key(v) for v in column], dtype=pl.Utf8)
        return pl.from_pandas(column)
    values = list(column)
    if any(not isinstance(v, (int, float, type(None))) for v in values):
        return pl.Series("key", [to_key(v) for v in values], dtype=pl.Utf8)
    return pl.Series("key", values)


def _escape_char(match: re.Match) -> str:
    ch = match.group(0)
    if ch in _SIMPLE:
        return _SIMPLE[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_key(key: str) -> str:
    """Escape backslash, whitespace and control characters so the key is one token.

    Example: escape_key("a b") == "a\\\\sb"; unescape_key(escape_key(k)) == k for any k.
    """
    escaped = _NEEDS_ESCAPE.sub(_escape_char, key)
    # \s does not match every Unicode format character; catch the rest explicitly.
    if any(unicodedata.category(c) in ("Zs", "Zl", "Zp", "Cf") for c in escaped):
        escaped = "".join(
            _escape_char(re.match(".", c, re.S)) if unicodedata.category(c) in ("Zs", "Zl", "Zp", "Cf") else c
            for c in escaped
        )
    return escaped


def unescape_key(text: str) -> str:
    """Inverse of `escape_key`."""

    def back(match: re.Match) -> str:
        body = match.group(1)
        if body in _SIMPLE_BACK:
            return _SIMPLE_BACK[body]
        return chr(int(body[1:], 16))

    return _ESCAPED.sub(back, text)

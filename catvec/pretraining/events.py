"""Reading and validating event logs: the only place that parses them.

`read_events` returns an `EventsTable`: a polars DataFrame with the columns

    user  (str, null in basket mode without a user column)
    item  (str key, through catvec.base.keys.normalize_keys)
    t     (int64 microseconds since the epoch, UTC; 0 when there is no time column)
    group (str, session or basket id; only when a session or basket column is given)
    row   (int64, position in the input: the deterministic tie-break)

plus the read stats and a checksum of the input. Rules (see README "Input rules"):
numeric times are epoch seconds, ms or us (auto: by magnitude), text times are ISO-8601
with or without an offset (converted to UTC; naive times are taken as UTC); any other
text (01/02/2024: 1 February or 2 January?) is refused unless time_format names its
strftime format. Empty ids or times refuse the file unless drop_nulls is set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import dataclass, field

from catvec.base.errors import CatvecError
from catvec.base.faults import fault_point
from catvec.base.keys import normalize_keys
from catvec.base.steps import step
from catvec.base.tables import is_multi_part, read_frame, read_source, resolve_source
from catvec.pretraining.config import EventOptions

log = logging.getLogger(__name__)

# ISO-8601 dates and date-times (extended format), the only text times read without a format.
ISO_TIME = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?"
            r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$")
FORMAT_HINT = "write ISO-8601 (2024-05-01T12:00:00Z) or epoch seconds, or pass --time-format (e.g. %d/%m/%Y)"


@dataclass
class EventsTable:
    frame: "object"  # polars.DataFrame with user, item, t, [group], row
    source: str
    checksum: str
    stats: dict = field(default_factory=dict)
    basket: bool = False  # groups are baskets (unordered), not sessions


def read_events(source, options: EventOptions = EventOptions()) -> EventsTable:
    """Read events: a file (.csv, .tsv, .parquet), a Parquet folder, a glob, a comma list,
    a URL, or a pandas / polars DataFrame, with the reading options of `options` (its
    `events` is not read: `source` is). `since` / `until` (ISO-8601) keep the events in
    that time range, both ends included.

    Example: read_events("data/events.csv").frame.columns == ["user", "item", "t", "row"]
             read_events("orders.csv", EventOptions(basket_col="order_id"))
    """
    window = time_window(options.since, options.until)
    if window != (None, None) and isinstance(source, (str, list, tuple, Path)) and is_multi_part(source):
        src = resolve_source(source, "events", "--events", options.sep)
        raw, name, checksum = read_source(src, src.scan(window=window)), src.name, src.checksum()
    else:
        raw, name, checksum = read_frame(source, "events", "--events", options.sep)
    return events_from_frame(raw, name, checksum, options, window=window)


def events_from_frame(raw, name: str, checksum: str, options: EventOptions = EventOptions(),
                      window=(None, None), row=None) -> EventsTable:
    """A raw polars frame (the input's own columns) -> EventsTable, read with the column
    and time options of `options`. `row` names a column of positions in the whole input (a
    shard of it keeps the global tie-break); `window` is `time_window(since, until)` in
    microseconds."""
    import polars as pl

    user_col, item_col, time_col = options.user_col, options.item_col, options.time_col
    session_col, basket_col, basket = options.session_col, options.basket_col, options.basket
    needed = {"item_col": item_col}
    if basket:
        needed["basket_col"] = basket_col
    else:
        needed["user_col"] = user_col
        if time_col:
            needed["time_col"] = time_col
    if session_col:
        needed["session_col"] = session_col
    _check_columns(raw, needed, name)
    _check_scalar(raw, {**needed, **({"user_col": user_col} if basket and user_col in raw.columns else {})}, name)
    if raw.height == 0 and row is None:
        raise CatvecError(f"{name}: no events (the file has a header but no rows)")

    stats = {"events_read": raw.height, "dropped": {}}
    cols = {"row": raw[row].cast(pl.Int64) if row else pl.int_range(0, raw.height, dtype=pl.Int64, eager=True)}
    cols["item"] = normalize_keys(raw[item_col])
    if basket:
        cols["group"] = normalize_keys(raw[basket_col])
        cols["user"] = normalize_keys(raw[user_col]) if user_col in raw.columns else pl.Series([None] * raw.height, dtype=pl.Utf8)
    else:
        cols["user"] = normalize_keys(raw[user_col])
        if session_col:
            cols["group"] = normalize_keys(raw[session_col])
    use_time = bool(time_col) and time_col in raw.columns
    cols["t"] = (_parse_times(raw[time_col], time_col, options.time_unit, name, options.time_format) if use_time
                 else pl.Series([0] * raw.height, dtype=pl.Int64))
    frame = pl.DataFrame({k: v.alias(k) for k, v in cols.items()})
    if window != (None, None):
        if not use_time:
            raise CatvecError(f"{name}: since / until need a time column; pass --time-col NAME")
        lo, hi = window
        inside = pl.lit(True) if lo is None else pl.col("t") >= lo
        frame = frame.filter(inside if hi is None else inside & (pl.col("t") <= hi))
        # events outside the window are not read: the stats do not depend on partition pruning
        stats["events_read"] = frame.height

    checks = [("item", item_col)]
    checks += [("group", basket_col)] if basket else [("user", user_col)]
    if session_col:
        checks.append(("group", session_col))
    if use_time:
        checks.append(("t", time_col))
    for col, label in checks:
        missing = frame[col].is_null()
        n_missing = int(missing.sum())
        if not n_missing:
            continue
        if not options.drop_nulls:
            first = int(frame.filter(missing)["row"][0])
            raise CatvecError(
                f"{name}: column {label!r} has {n_missing} empty value(s) (first at data row {first + 1}); "
                "fill or remove them, or pass --drop-nulls to drop those events"
            )
        frame = frame.filter(~missing)
        stats["dropped"][f"empty_{label}"] = n_missing
    if frame.height == 0 and row is None:
        if window != (None, None) and stats["events_read"] == 0:
            raise CatvecError(f"{name}: no events between since and until ({window_text(window)}); "
                              "widen the range")
        raise CatvecError(f"{name}: every event was dropped for empty values; nothing left to learn from")
    fault_point("events-read")
    order = ["user", "item", "t"] + (["group"] if "group" in frame.columns else []) + ["row"]
    return EventsTable(frame=frame.select(order), source=name, checksum=checksum, stats=stats, basket=basket)


@step(name="read-events", io=True)
def read_events_table(options: EventOptions, events=None) -> EventsTable:
    """The events `options` name (options.path, or the DataFrame `events`), read with its
    reading options. The pipeline step, also used by evaluation, tuning and recommend."""
    return read_events(events if events is not None else options.path, options)


def time_window(since: str = "", until: str = "") -> tuple[int | None, int | None]:
    """`since` / `until` (ISO-8601 dates or date-times, naive = UTC) -> (lo, hi) in
    microseconds since the epoch, None for an open end. A date alone as `until` means the
    whole day. Example: time_window("2026-10-01", "2026-10-31")"""
    bounds = []
    for label, text in (("since", since), ("until", until)):
        text = (text or "").strip()
        if not text:
            bounds.append(None)
            continue
        import polars as pl

        series = pl.Series([text], dtype=pl.Utf8)
        if not bool(series.str.contains(ISO_TIME)[0]):
            raise CatvecError(f"{label}: {text!r} is not an ISO-8601 date or time; write e.g. 2026-10-01 "
                              "or 2026-10-01T12:00:00Z")
        value = int(_parse_text_times(series, label, label)[0])
        if label == "until" and len(text) == 10:  # a whole day
            value += 86_400_000_000 - 1
        bounds.append(value)
    if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
        raise CatvecError(f"since {since!r} is after until {until!r}; swap them or widen the range")
    return bounds[0], bounds[1]


def window_text(window) -> str:
    from datetime import datetime, timezone

    return " .. ".join("open" if v is None else datetime.fromtimestamp(v / 1e6, timezone.utc).isoformat()
                       for v in window)


def _check_columns(raw, needed: dict, name: str) -> None:
    columns = list(raw.columns)
    # polars renames a repeated header name to NAME_duplicated_N
    dupes = sorted({c for c in columns if columns.count(c) > 1}
                   | {c.rsplit("_duplicated_", 1)[0] for c in columns if "_duplicated_" in c})
    if dupes:
        raise CatvecError(f"{name}: duplicated column name(s) {dupes}; rename them")
    for option, col in needed.items():
        if col in columns:
            continue
        hint = ""
        if len(columns) == 1 and any(d in columns[0] for d in ";\t|,"):
            hint = " (the header looks like one column: is the delimiter right? use --sep)"
        flag = "--" + option.replace("_", "-")
        raise CatvecError(f"{name}: no column {col!r} (columns: {', '.join(columns)}); pass {flag} NAME{hint}")


def _check_scalar(raw, columns: dict, name: str) -> None:
    """Refuse a key or time column of lists, arrays or structs (Parquet nested types): turned
    into text, 40 different lists would become one key ("shape: (1,) Series...")."""
    import polars as pl

    for option, col in columns.items():
        dtype = raw.schema[col]
        if dtype.is_nested() or dtype == pl.Object:
            flag = "--" + option.replace("_", "-")
            raise CatvecError(f"{name}: column {col!r} has the type {dtype} (not one value per row); the "
                              f"{option.removesuffix('_col')} column needs text, numbers or times: explode the "
                              f"lists into rows or pass another {flag}")


def _parse_times(col, label: str, unit: str, name: str, time_format: str = ""):
    """Any time column -> int64 microseconds since the epoch, UTC (null where empty)."""
    import polars as pl

    if time_format and col.dtype not in (pl.Datetime, pl.Date):
        return _parse_formatted_times(col.cast(pl.Utf8), time_format, label, name)
    if col.dtype == pl.Datetime:
        tz = col.dtype.time_zone
        col = col.dt.convert_time_zone("UTC") if tz else col
        return col.dt.cast_time_unit("us").cast(pl.Int64)
    if col.dtype == pl.Date:
        return col.cast(pl.Datetime("us")).cast(pl.Int64)
    if col.dtype.is_numeric():
        return _epoch_to_us(col.cast(pl.Float64), unit, label, name)
    text = col.cast(pl.Utf8).str.strip_chars()
    text = text.set(text == "", None)
    integers = text.cast(pl.Int64, strict=False)
    if integers.null_count() == text.null_count():
        # Whole numbers (the common epoch column): integer arithmetic, no float parse.
        return _epoch_to_us(integers, unit, label, name)
    numeric = text.cast(pl.Float64, strict=False)
    n_text = int(text.is_not_null().sum())
    if int(numeric.is_not_null().sum()) == n_text:
        return _epoch_to_us(numeric, unit, label, name)
    if int(numeric.is_not_null().sum()) > 0:
        bad = text.filter(numeric.is_null() & text.is_not_null())[0]
        raise CatvecError(f"{name}: column {label!r} mixes numbers and dates (e.g. {bad!r}); use one format")
    not_iso = text.is_not_null() & ~text.str.contains(ISO_TIME)
    if bool(not_iso.any()):
        row = int(not_iso.arg_true()[0])
        raise CatvecError(f"{name}: column {label!r} has {int(not_iso.sum())} time(s) that are not ISO-8601, "
                          f"e.g. {text[row]!r} at data row {row + 1}; {FORMAT_HINT}")
    return _parse_text_times(text, label, name)


def _parse_formatted_times(text, time_format: str, label: str, name: str):
    """Text times in one explicit strftime format -> int64 us, UTC (naive times are UTC)."""
    import polars as pl

    text = text.str.strip_chars()
    text = text.set(text == "", None)
    try:
        parsed = text.str.to_datetime(format=time_format, strict=False, time_unit="us")
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        parsed = None
    if parsed is None:
        raise CatvecError(f"{name}: column {label!r}: cannot read times with --time-format {time_format!r}; "
                          "check the format (strftime codes such as %d/%m/%Y %H:%M)")
    if parsed.dtype.time_zone not in (None, "UTC"):
        parsed = parsed.dt.convert_time_zone("UTC")
    bad = text.is_not_null() & parsed.is_null()
    if bool(bad.any()):
        row = int(bad.arg_true()[0])
        raise CatvecError(f"{name}: column {label!r} has {int(bad.sum())} time(s) that do not match "
                          f"--time-format {time_format!r}, e.g. {text[row]!r} at data row {row + 1}")
    return parsed.cast(pl.Int64)


def _parse_text_times(text, label: str, name: str):
    import polars as pl

    result = pl.Series([None] * len(text), dtype=pl.Int64)
    remaining = text
    # Each pass infers a format from the first value still unparsed: mixed formats are read
    # one format at a time. Three formats at most; more is almost surely a broken column.
    for _ in range(3):
        todo = remaining.is_not_null() & result.is_null()
        if not bool(todo.any()):
            return result
        parsed = _to_datetime(text.set(~todo, None))
        result = pl.select(pl.coalesce(result, parsed)).to_series()
        remaining = text.set(result.is_not_null(), None)
    bad = text.filter(text.is_not_null() & result.is_null())
    if len(bad):
        row = int((text.is_not_null() & result.is_null()).arg_true()[0])
        raise CatvecError(
            f"{name}: column {label!r} has {len(bad)} unparsable time(s), e.g. {bad[0]!r} at data row {row + 1}; "
            "use ISO-8601 (2024-05-01T12:00:00Z) or epoch seconds"
        )
    return result


def _to_datetime(text):
    import polars as pl

    try:
        parsed = text.str.to_datetime(strict=False, time_unit="us", time_zone="UTC")
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        try:
            parsed = text.str.to_datetime(strict=False, time_unit="us")
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
            return pl.Series([None] * len(text), dtype=pl.Int64)
    if parsed.dtype.time_zone not in (None, "UTC"):
        parsed = parsed.dt.convert_time_zone("UTC")
    return parsed.cast(pl.Int64)


_UNIT_US = {"s": 1e6, "ms": 1e3, "us": 1.0}


def _epoch_to_us(values, unit: str, label: str, name: str):
    import polars as pl

    if unit == "auto":
        biggest = values.abs().max() or 0.0
        # 1e11 s is the year 5138 and 1e14 ms the year 5138: by magnitude the unit is clear.
        unit = "us" if biggest >= 1e14 else "ms" if biggest >= 1e11 else "s"
        if unit != "s" and bool(((values.abs() >= 1e8) & (values.abs() < 1e11)).any()):
            raise CatvecError(
                f"{name}: column {label!r} mixes epoch seconds and milliseconds; "
                "convert to one unit or pass --time-unit s|ms|us"
            )
        log.debug("%s: numeric times read as epoch %s", label, unit)
    if values.dtype.is_float():
        values = values.fill_nan(None)
    # int64 microseconds reach the year 294247; beyond that (or inf) is no time at all
    out_of_range = values.cast(pl.Float64).abs() * _UNIT_US[unit] >= 9.2e18
    if bool(out_of_range.any()):
        row = int(out_of_range.arg_true()[0])
        raise CatvecError(f"{name}: column {label!r} holds {values[row]!r} at data row {row + 1}, out of range for "
                          f"epoch {unit}; fix the value or pass --time-unit")
    if values.dtype.is_integer():
        return values.cast(pl.Int64) * int(_UNIT_US[unit])
    return (values * _UNIT_US[unit]).round(0).cast(pl.Int64)

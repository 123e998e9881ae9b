"""Property: whatever table a command is given, it works or refuses in one clear line.

Hypothesis writes tables with odd delimiters, quoting, byte-order marks, CRLF, mixed
types, huge and empty fields, broken headers and random bytes, as CSV, TSV or Parquet,
and runs each command of COMMANDS on them in-process through the CLI's `main`. Each run
must either succeed (exit 0) or exit 2 with one line starting "catvec: error:"; never a
traceback, never "internal error". Files written by earlier runs stay byte-identical:
a refused run changes nothing, a successful one only adds a version (or rewrites its
own output file).

Adding a command is one line in COMMANDS: the columns of its input table and its argv.
The example count is bounded (EXAMPLES per command, derandomized, so every run of the
suite tries the same tables); CATVEC_PROPERTY_EXAMPLES=500 searches further, and
CATVEC_PROPERTY_DEBUG=1 with --hypothesis-show-statistics tallies the refusals.
"""

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from catvec.cli.main import main
from ftdata import write_inputs

EXAMPLES = int(os.environ.get("CATVEC_PROPERTY_EXAMPLES", "50"))
FAST_PRETRAIN = ["--epochs", "1", "--dim", "4", "--exact", "--no-vector-map", "-q"]

# command: (columns of its input table, argv given the table and the earlier outputs)
COMMANDS = {
    "pretrain": (["user_id", "item_id", "timestamp"],
                 lambda t, o: ["pretrain", "--events", t, "--out", o["vectors"], *FAST_PRETRAIN]),
    "finetune": (["item_id", "x", "y"],
                 lambda t, o: ["finetune", "--vectors", o["items"], "--table", t, "--target", "y",
                               "--out", o["models"], "--epochs", "1", "--hidden", "4", "--exact", "-q"]),
    "predict": (["item_id", "color", "x"],
                lambda t, o: ["predict", "--model", o["models"], "--table", t, "--out", o["scored"], "-q"]),
    "recommend": (["user_id", "item_id", "timestamp"],
                  lambda t, o: ["recommend", "--vectors", o["vectors"], "--events", t, "--out", o["recs"], "-q"]),
}
OWN_OUTPUT = {"predict": "scored", "recommend": "recs"}  # the file a successful run rewrites

SEPARATORS = [",", ";", "\t", "|", " "]
# plausible values per column name, so that most tables get past the header into the deep paths
PLAUSIBLE = {
    "user_id": st.sampled_from(["u1", "u2", "u3", "7", "7.0"]),
    "item_id": st.integers(500, 520).map(str) | st.sampled_from(["505.0", "a b", "ü", "0510"]),
    "timestamp": st.integers(1_700_000_000, 1_700_000_100).map(str),
    "x": st.floats(-10, 10, allow_nan=False).map(lambda v: f"{v:.3f}"),
    "y": st.floats(-10, 10, allow_nan=False).map(lambda v: f"{v:.3f}"),
    "color": st.sampled_from(["red", "green", "blue", "mauve"]),
}
hostile = st.one_of(
    st.integers(-3, 12).map(str),                                   # small ids and epoch seconds
    st.sampled_from(["595.0", "7.00", "1e3", "nan", "inf", "-0", "0123", "true", "NULL", "1700000000000"]),
    st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01 10:00", "01/02/2024", "2024-13-45", "next tuesday"]),
    st.just(""),                                                    # empty field
    st.text(max_size=8),                                            # any Unicode, separators and quotes included
    st.integers(1, 3).map(lambda k: "x" * (20_000 * k)),           # huge field
)


def cell(column: str):
    """Mostly a plausible value for the column, one time in 30 anything at all."""
    return st.integers(0, 29).flatmap(lambda k: PLAUSIBLE.get(column, hostile) if k else hostile)


@st.composite
def tables(draw, columns):
    """(bytes, suffix) of a table holding `columns` (sometimes renamed, dropped or repeated)."""
    header = list(columns)
    broken = draw(st.sampled_from(["none"] * 8 + ["drop", "dup", "rename", "spaces"]))
    if broken == "drop":
        header.pop(draw(st.integers(0, len(header) - 1)))
    elif broken == "dup":
        header.append(header[0])
    elif broken == "rename":
        header[0] = draw(st.text(min_size=1, max_size=5))
    elif broken == "spaces":
        header = [f" {h} " for h in header]
    rows = draw(st.lists(st.tuples(*[cell(c.strip()) for c in header]), max_size=25))
    kind = draw(st.sampled_from(["csv", "csv", "csv", "csv", "tsv", "parquet", "parquet", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300)), draw(st.sampled_from([".csv", ".parquet", ".tsv"]))
    if kind == "parquet":
        return _parquet_bytes(header, rows, draw(st.booleans())), ".parquet"
    sep = "\t" if kind == "tsv" else draw(st.sampled_from([","] * 8 + SEPARATORS))
    quote_all = draw(st.booleans())
    lines = [sep.join(_field(v, sep, quote_all) for v in line) for line in [header, *rows]]
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))
    if draw(st.integers(0, 7)) == 0:  # a stray quote, separator or NUL up front
        text = draw(st.sampled_from(['"', sep, "\x00"])) + text
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data, "." + kind


def _field(value: str, sep: str, quote_all: bool) -> str:
    if quote_all or any(c in value for c in (sep, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


def _parquet_bytes(header, rows, as_numbers: bool) -> bytes:
    import polars as pl

    columns = {}
    for k, name in enumerate(header):
        if name in columns:
            continue
        col = pl.Series(name, [r[k] for r in rows], dtype=pl.Utf8)
        columns[name] = col.cast(pl.Float64, strict=False) if as_numbers else col
    buffer = io.BytesIO()
    pl.DataFrame(list(columns.values())).write_parquet(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, sample_events):
    """Outputs of earlier runs that no later run may damage."""
    root = tmp_path_factory.mktemp("earlier")
    vectors_dir, table = write_inputs(root, n=120)
    vectors = root / "vectors"
    assert main(["pretrain", "--events", str(sample_events), "--out", str(vectors), *FAST_PRETRAIN]) == 0
    models = root / "models"
    assert main(["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "y",
                 "--cat-cols", "item_id,color", "--cont-cols", "x", "--out", str(models), "--epochs", "1",
                 "--exact", "-q"]) == 0
    scored = root / "scored.csv"
    assert main(["predict", "--model", str(models), "--table", str(table), "--out", str(scored), "-q"]) == 0
    recs = root / "recs.csv"
    assert main(["recommend", "--vectors", str(vectors), "--events", str(sample_events), "--out", str(recs), "-q"]) == 0
    return {"items": str(vectors_dir), "vectors": str(vectors), "models": str(models), "scored": str(scored),
            "recs": str(recs)}


def snapshot(paths) -> dict:
    """{file: sha256} of every file under the outputs (caches and runs in progress aside)."""
    files = {}
    for top in paths:
        top = Path(top)
        found = [top] if top.is_file() else [Path(d) / f for d, _, names in os.walk(top) for f in names]
        for path in found:
            # promotions.json is an append-only record of moves of latest: it grows by design
            if not {".cache", ".staging", ".checkpoints"} & set(path.parts) and path.name != "promotions.json":
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def run(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize("command", list(COMMANDS))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_table_works_or_is_refused_in_one_line(outputs, command, data):
    columns, argv_of = COMMANDS[command]
    content, suffix = data.draw(tables(columns), label="table")
    directory = Path(tempfile.mkdtemp(prefix="catvec-prop-"))
    try:
        table = directory / f"input{suffix}"
        table.write_bytes(content)
        before = snapshot(outputs.values())
        code, err = run([str(a) for a in argv_of(str(table), outputs)])
        after = snapshot(outputs.values())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    event(f"exit {code}" + (" " + err[:150] if os.environ.get("CATVEC_PROPERTY_DEBUG") else ""))  # --hypothesis-show-statistics: how many tables worked
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in (0, 2, 3), (code, err)  # 3: written as a candidate, the promotion gate kept latest
    if code == 2:
        assert err.startswith("catvec: error:") and err.count("\n") == 1, err
        assert after == before
    else:
        mine = outputs[OWN_OUTPUT[command]] if command in OWN_OUTPUT else None
        assert {f: h for f, h in after.items() if f in before and f != mine} == \
               {f: h for f, h in before.items() if f != mine}

"""The catalogue of awkward inputs, through the real CLI.

Each case ends one of two ways, and says which: HANDLED by a documented rule (README
"Input rules") or REFUSED with one line naming the file / column / value, exit status 2,
and the earlier output byte-identical.
"""

import hashlib
import json
from pathlib import Path

import pytest

from catvec.cli.main import main
from catvec.base.manifest import read_manifest
from catvec.base.vectors import load_vectors

FAST = ["--epochs", "2", "--dim", "8", "--exact", "-q"]
HEADER = "user_id,item_id,timestamp\n"


def rows(*events):
    return HEADER + "".join(f"{u},{i},{t}\n" for u, i, t in events)


def two_users(item_a="a", item_b="b", t0="1", t1="2"):
    return rows(("u", item_a, t0), ("u", item_b, t1), ("v", item_a, t0), ("v", item_b, t1))


def digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".cache" not in p.parts}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    out = tmp_path_factory.mktemp("cat") / "out"
    assert main(["pretrain", "--out", str(out), *FAST]) == 0
    return out


HANDLED = {
    # name: (csv text or bytes, extra args, check(vectors, manifest))
    "quoted newline in id": ('user_id,item_id,timestamp\nu,"multi\nline",1\nu,b,2\n', [],
                             lambda v, m: "multi\nline" in v),
    "ids with spaces and tabs": (two_users("a b", "c\td"), [], lambda v, m: {"a b", "c\td"} <= set(v.keys)),
    "unicode ids": (two_users("café", "東京"), [], lambda v, m: {"café", "東京"} <= set(v.keys)),
    "mixed types in id column": (two_users("123", "abc"), [], lambda v, m: {"123", "abc"} <= set(v.keys)),
    "leading zeros kept": (two_users("007", "7"), [], lambda v, m: {"007", "7"} <= set(v.keys)),
    "crlf line ends": (two_users().replace("\n", "\r\n"), [], lambda v, m: set(v.keys) == {"a", "b"}),
    "utf-8 bom": (b"\xef\xbb\xbf" + two_users().encode(), [], lambda v, m: set(v.keys) == {"a", "b"}),
    "epoch milliseconds": (two_users(t0="1700000000000", t1="1700000001000"), [], lambda v, m: len(v) == 2),
    "iso times with zones": (two_users(t0="2024-01-01T02:00:00+02:00", t1="2024-01-01T00:30:00Z"), [],
                             lambda v, m: m["corpus"]["tokens"] == 4),
    "mixed date formats": (two_users(t0="2024-01-01 00:00:00", t1="2024-01-02T00:00:00Z"), [],
                           lambda v, m: m["corpus"]["tokens"] == 4),
    "out of order times": (rows(("u", "b", 5), ("u", "a", 1), ("v", "b", 9), ("v", "a", 3)), [],
                           lambda v, m: m["corpus"]["tokens"] == 4),
    "duplicate events collapse": (rows(("u", "a", 1), ("u", "a", 1), ("u", "b", 2), ("v", "a", 1), ("v", "b", 2)), [],
                                  lambda v, m: m["corpus"]["dropped"]["repeats_collapsed"] == 1),
    "empty ids dropped on request": (rows(("u", "a", 1), ("u", "", 2), ("u", "b", 3), ("v", "a", 1), ("v", "b", 2)),
                                     ["--drop-nulls"], lambda v, m: m["corpus"]["dropped"]["empty_item_id"] == 1),
    "semicolon file with --sep": (two_users().replace(",", ";"), ["--sep", ";"], lambda v, m: len(v) == 2),
    "integral float ids written as text": (two_users("595.0", "7.00"), [], lambda v, m: set(v.keys) == {"595", "7"}),
    "tab typed as backslash-t": (two_users().replace(",", "\t"), ["--sep", "\\t"], lambda v, m: len(v) == 2),
    "day-first times with --time-format": (two_users(t0="01/02/2024 10:00", t1="01/02/2024 10:05"),
                                           ["--time-format", "%d/%m/%Y %H:%M"], lambda v, m: m["corpus"]["tokens"] == 4),
    "session gap with a unit": (two_users(), ["--session-gap", "30m"], lambda v, m: m["corpus"]["tokens"] == 4),
    "few keys warn without --strict": (two_users(), [], lambda v, m: any("only 2 key(s)" in w for w in m["warnings"])),
    "one user with 100k events": (HEADER + "".join(f"big,i{k % 97},{k}\n" for k in range(100_000)), ["--epochs", "1"],
                                  lambda v, m: m["corpus"]["lines"] == 10 and m["corpus"]["sequences_split"] == 1),
}


@pytest.mark.parametrize("case", list(HANDLED))
def test_handled(tmp_path, case):
    text, extra, check = HANDLED[case]
    path = tmp_path / "events.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    assert main(["pretrain", "--events", str(path), "--out", str(tmp_path / "o"), *FAST, *extra]) == 0
    assert check(load_vectors(tmp_path / "o"), read_manifest(tmp_path / "o"))


REFUSED = {
    # name: (csv text or None for missing, extra args, message fragment)
    "a single item everywhere": (rows(*[(f"u{k}", "same", k) for k in range(20)]), [], "every event was dropped"),
    "tab-separated read as csv": (two_users().replace(",", "\t"), [], "is the delimiter right"),
    "duplicated column": ("user_id,item_id,item_id\nu,a,b\n", ["--time-col", ""], "duplicated column"),
    "null user": (rows(("", "a", 1), ("u", "b", 2)), [], "column 'user_id' has 1 empty"),
    "unparsable time": (two_users(t0="2024-01-01", t1="next tuesday"), [], "'next tuesday'"),
    "seconds mixed with ms": (two_users(t0="1700000000", t1="1700000001000"), [], "mixes epoch seconds and milliseconds"),
    "numbers mixed with dates": (two_users(t0="1700000000", t1="2024-01-01"), [], "mixes numbers and dates"),
    "folder without parquet as events": (None, ["--events", "__DIR__"], "is a folder without .parquet files"),
    "negative window": (two_users(), ["--window", "-1"], "window must be >= 0"),
    "negative epochs": (two_users(), ["--epochs", "-1"], "epochs must be >= 0"),
    # a value outside a field's choices (--time-unit hours) is argparse's refusal: tests/base/test_config.py
    "basket share beyond half": (two_users(), ["--basket-holdout-share", "50"], "basket_holdout_share must be a percent"),
    "unknown export": (two_users(), ["--export", "parquet"], "export: unknown format 'parquet'"),
    "basket with session gap": (two_users(), ["--basket-col", "user_id", "--session-gap", "30m"], "basket_col cannot"),
    "session gap without a unit": (two_users(), ["--session-gap", "30"], "30 has no unit; write 30s, 30m"),
    "ambiguous slash date": (two_users(t0="01/02/2024", t1="03/02/2024"), [],
                             "not ISO-8601, e.g. '01/02/2024' at data row 1"),
    "times that miss --time-format": (two_users(t0="2024-02-01", t1="2024-02-03"), ["--time-format", "%d/%m/%Y"],
                                      "do not match --time-format '%d/%m/%Y', e.g. '2024-02-01'"),
    "time format without codes": (two_users(), ["--time-format", "dd/mm/yyyy"], "is not a strftime format"),
    "two-character separator": (two_users(), ["--sep", ";;"], "sep: ';;' is not a delimiter"),
    "multi-byte separator": (two_users(), ["--sep", "§"], "is not a delimiter"),
    "attribute column without attributes": (two_users(), ["--attribute-col", "genre"], "attribute_col needs item_attributes"),
    "strict: too few keys": (two_users(), ["--strict"], "not published: only 2 key(s) have vectors"),
    "strict: the sample with a 30s gap": (None, ["--events", "", "--session-gap", "30s", "--strict"], "not published:"),
    "output under a file": (two_users(), ["--out", "__FILE__/out"], "cannot be created"),
    "infinite time": (two_users(t0="inf"), [], "holds inf at data row 1, out of range for epoch us"),
    "line break in a column name": ('"user\nid",item_id,timestamp\nu,a,1\n', [], "no column 'user_id' (columns: user\\nid"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused(tmp_path, earlier, capsys, case):
    text, extra, message = REFUSED[case]
    path = tmp_path / "events.csv"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    before = digest(earlier)
    extra = [str(path) + a[len("__FILE__"):] if a.startswith("__FILE__") else a for a in extra]
    extra = [str(tmp_path) if a == "__DIR__" else a for a in extra]   # this test's own folder, no .parquet in it
    argv = ["pretrain", "--events", str(path), "--out", str(earlier), *FAST, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("catvec: error:")
    assert digest(earlier) == before


CONFIGS = {
    "unknown key": ("dimension = 8\n", "unknown key 'dimension'"),
    "wrong type": ('dim = "big"\n', "dim must be an integer"),
    "bool as string": ('exact = "yes"\n', "exact must be true or false"),
    "negative learning rate": ("alpha = -0.01\n", "alpha must be"),
    "not toml": ("dim == 8\n", "not valid TOML"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_bad_config(tmp_path, earlier, capsys, case):
    text, message = CONFIGS[case]
    (tmp_path / "c.toml").write_text(text)
    before = digest(earlier)
    assert main(["pretrain", "--config", str(tmp_path / "c.toml"), "--out", str(earlier)]) == 2
    err = capsys.readouterr().err
    assert message in err and "c.toml" in err and err.count("\n") == 1
    assert digest(earlier) == before


def _damage(version: Path, how: str) -> None:
    if how == "truncated safetensors":
        data = (version / "vectors.safetensors").read_bytes()
        (version / "vectors.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "keys do not match manifest":
        (version / "keys.json").write_text(json.dumps(["x"]))
    elif how == "manifest edited":
        text = (version / "manifest.json").read_text()
        (version / "manifest.json").write_text(text.replace('"dim": 8', '"dim": 9'))
    elif how == "no COMPLETE marker":
        (version / "COMPLETE").unlink()
    elif how == "not a weight dir":
        for p in version.iterdir():
            p.unlink()


@pytest.mark.parametrize("how, message", [
    ("truncated safetensors", "vectors.safetensors: checksum does not match"),
    ("keys do not match manifest", "keys.json: checksum does not match"),
    ("manifest edited", "manifest.json: checksum does not match COMPLETE"),
    ("no COMPLETE marker", "incomplete version"),
    ("not a weight dir", "not a catvec weight directory"),
])
def test_damaged_weight_files(tmp_path, capsys, how, message):
    out = tmp_path / "o"
    assert main(["pretrain", "--out", str(out), *FAST]) == 0
    version = (out / "latest").resolve()
    _damage(version, how)
    assert main(["similar", "--vectors", str(out), "1001"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_similar_unknown_key(earlier, capsys):
    assert main(["similar", "--vectors", str(earlier), "no-such-item"]) == 2
    assert "'no-such-item' is not in the vectors" in capsys.readouterr().err


def test_unreadable_events_file(tmp_path, earlier, capsys, monkeypatch):
    path = tmp_path / "events.csv"
    path.write_text(two_users())
    real_open = open

    def refuse(file, *args, **kwargs):  # root reads anything: simulate a permission error
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refuse)
    before = digest(earlier)
    assert main(["pretrain", "--events", str(path), "--out", str(earlier), *FAST]) == 2
    err = capsys.readouterr().err
    assert "cannot read the file (Permission denied)" in err and err.count("\n") == 1
    assert digest(earlier) == before

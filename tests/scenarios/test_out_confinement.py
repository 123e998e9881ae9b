"""`latest` and every promote target must resolve inside OUT: a symlink that leaves OUT is
refused in one line by recommend, similar, finetune, versions, promote and a child's parent
load; `catvec promote` mends such a latest."""

import os
import random
import shutil
from pathlib import Path

import pytest

from catvec.base.store import VersionStore
from catvec.cli.main import main


def write_events(path: Path) -> Path:
    rng = random.Random(5)
    lines = ["user_id,item_id,timestamp"] + [f"u{u},{100 + rng.randrange(12)},{t}" for u in range(30) for t in range(8)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def escaped(tmp_path):
    """OUT with one version, and OUT/latest pointing at a copy of it outside OUT."""
    events = write_events(tmp_path / "events.csv")
    out = tmp_path / "out"
    assert main(["pretrain", "--events", str(events), "--out", str(out), "--dim", "8", "--epochs", "2", "--no-tune",
                 "--quiet"]) == 0
    version = VersionStore(out).latest_name()
    elsewhere = tmp_path / "elsewhere" / version
    shutil.copytree(out / version, elsewhere)
    tmp_link = out / ".latest.new"
    os.symlink(str(elsewhere), tmp_link)
    os.replace(tmp_link, out / "latest")
    return events, out, version, elsewhere


def refused(capsys, argv) -> str:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "internal error" not in err and "points outside" in err
    return err


def test_every_reader_refuses_a_latest_outside_out(escaped, tmp_path, capsys, inputs):
    events, out, version, elsewhere = escaped
    queries = tmp_path / "q.csv"
    queries.write_text("user_id,item_id,timestamp\nu1,100,1\n")
    refused(capsys, ["similar", "--vectors", out, "--k", "3", "100"])
    refused(capsys, ["similar", "--vectors", out / "latest", "--k", "3", "100"])
    refused(capsys, ["recommend", "--vectors", out / "latest", "--events", queries, "--k", "3",
                     "--out", tmp_path / "rec.csv"])
    _, table = inputs
    refused(capsys, ["finetune", "--vectors", out, "--table", table, "--target", "y", "--out", tmp_path / "models",
                     "--epochs", "1", "--quiet"])
    refused(capsys, ["versions", out])
    err = refused(capsys, ["pretrain", "--events", events, "--out", out, "--dim", "8", "--epochs", "2", "--no-tune",
                           "--quiet"])
    assert str(elsewhere) in err and "catvec promote" in err
    assert VersionStore(out).versions() == [version] and not (tmp_path / "rec.csv").exists()

    # promote mends it: latest back inside OUT, and the readers work again
    assert main(["promote", str(out), version]) == 0
    assert os.readlink(out / "latest") == version
    assert main(["similar", "--vectors", str(out), "--k", "3", "100"]) == 0


def test_promote_refuses_a_version_that_is_a_link_out_of_out(escaped, capsys):
    events, out, version, elsewhere = escaped
    os.symlink(str(elsewhere), out / "20990101T000000000Z-abcdef")
    before = os.readlink(out / "latest")
    err = refused(capsys, ["promote", out, "20990101T000000000Z-abcdef"])
    assert "20990101T000000000Z-abcdef" in err
    assert os.readlink(out / "latest") == before

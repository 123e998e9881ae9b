"""Saved state is checked before it steers a run: settings inherited from a parent's manifest
pass the validation flags pass, and sane upper bounds stop a typo that would run for hours."""

import hashlib
import json
import random
from pathlib import Path

import pytest

from catvec.base.config import build_config

from catvec.finetuning.config import FinetuneConfig

from catvec.pretraining.config import PretrainConfig
from catvec.base.errors import CatvecError
from catvec.base.layout import COMPLETE, MANIFEST
from catvec.base.store import VersionStore
from catvec.cli.main import main
from catvec.pretraining.parents import parent_corpus
from catvec.pretraining.pipeline import pretrain

SMALL = ["--dim", "8", "--epochs", "2", "--exact", "--no-tune", "--quiet", "--no-gate"]  # a child loads its parent


def write_events(path: Path) -> Path:
    rng = random.Random(3)
    lines = ["user_id,item_id,timestamp"] + [f"u{u},i{rng.randrange(15)},{t}" for u in range(30) for t in range(8)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tamper(version: Path, **params) -> Path:
    """Edit the manifest's params and rewrite COMPLETE to match: a manifest that passes its
    checksum but holds values no flag would be allowed."""
    manifest = json.loads((version / MANIFEST).read_text())
    manifest["params"].update(params)
    (version / MANIFEST).write_text(json.dumps(manifest, indent=2))
    (version / COMPLETE).write_text("sha256:" + hashlib.sha256((version / MANIFEST).read_bytes()).hexdigest() + "\n")
    return version / MANIFEST


@pytest.fixture
def parent(tmp_path):
    events = write_events(tmp_path / "events.csv")
    out = tmp_path / "out"
    # window, ns_exponent and sample left open: a child inherits them from this manifest
    assert main(["pretrain", "--events", str(events), "--out", str(out), *SMALL]) == 0
    return events, out, out / VersionStore(out).latest_name()


@pytest.mark.parametrize("field, value, message", [
    ("window", "ten", "window must be an integer"),
    ("sample", -1, "sample must be >= 0"),
    ("ns_exponent", "x", "ns_exponent must be float"),
    ("window", 10**6, "window must be <= 1,000"),
])
def test_inherited_settings_are_validated_like_flags(parent, capsys, field, value, message):
    events, out, version = parent
    manifest = tamper(version, **{field: value})
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()
    assert main(["pretrain", "--events", str(events), "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "internal error" not in err
    assert str(manifest) in err and f"the setting {field} = " in err and message in err
    assert sorted(p.name for p in out.iterdir()) == before


def test_inherited_min_support_and_epochs(parent, capsys):
    events, out, version = parent
    manifest = tamper(version, min_support=-5)
    with pytest.raises(CatvecError, match=r"manifest.json: the setting min_support = -5 is refused"):
        pretrain(PretrainConfig(events=str(events), out=str(out), dim=8, epochs=2, tune=False, gate=False,
                                scorer="cosine"))
    tamper(version, min_support=1, epochs=10**8)
    with pytest.raises(CatvecError, match=r"the setting epochs = 100000000 is refused \(epochs must be <= 1,000"):
        pretrain(PretrainConfig(events=str(events), out=str(out), dim=8, tune=False, gate=False))
    assert str(manifest).endswith("manifest.json")


def test_the_parents_corpus_settings_are_validated(parent):
    events, out, version = parent
    tamper(version, min_count=-5)
    manifest = json.loads((version / MANIFEST).read_text())
    with pytest.raises(CatvecError) as info:
        parent_corpus(VersionStore(out), manifest)
    assert str(version / MANIFEST) in str(info.value) and "min_count = -5" in str(info.value)
    assert str(info.value).endswith("or pass --no-gate")  # a flag of this run would not change the parent's corpus


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "100000000"], "epochs must be <= 1,000"),
    (["--dim", "64000"], "dim must be <= 2,048"),
    (["--window", "50000"], "window must be <= 1,000"),
    (["--negative", "500"], "negative must be <= 100"),
    (["--max-sequence-length", "100000"], "max_sequence_length must be <= 10,000"),
])
def test_upper_bounds_on_flags(tmp_path, capsys, argv, message):
    assert main(["pretrain", "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert not (tmp_path / "out").exists()


def test_upper_bounds_in_toml_and_finetune(tmp_path):
    (tmp_path / "c.toml").write_text("epochs = 5000\n")
    with pytest.raises(CatvecError, match=r"c.toml: epochs must be <= 1,000"):
        build_config(PretrainConfig, tmp_path / "c.toml")
    with pytest.raises(CatvecError, match=r"hidden: layer sizes must be <= 16,384"):
        build_config(FinetuneConfig, None, hidden="1000000,64")
    with pytest.raises(CatvecError, match=r"epochs must be <= 10,000"):
        build_config(FinetuneConfig, None, epochs=10**7)
    with pytest.raises(CatvecError, match=r"emb_dims"):
        build_config(FinetuneConfig, None, emb_dims="item_id=100000")
    assert build_config(PretrainConfig, None, epochs=1000, dim=2048, window=1000).epochs == 1000

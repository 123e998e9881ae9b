"""The configuration machinery: groups cut from a flat config, allowed values declared once."""

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from catvec.base.config import _check_types, build_config, config_group, group_names, opt
from catvec.base.errors import CatvecError
from catvec.cli.options import add_config_arguments


@dataclass
class Toy:
    dim: int = opt(8, "size", group="model")
    lr: float = opt(0.1, "rate", group="fit")
    kind: str = opt("a", "kind", group="model", choices=("a", "b"))

    def validate(self):
        _check_types(self)
        return self


@config_group(Toy, "model")
class Model:
    """The model's part."""

    @property
    def doubled(self) -> int:
        return self.dim * 2


def test_group_holds_its_fields_frozen_with_methods():
    cfg = build_config(Toy, dim=3)
    model = Model.of(cfg)
    assert [f.name for f in dataclasses.fields(model)] == ["dim", "kind"]
    assert (model.dim, model.kind, model.doubled) == (3, "a", 6)
    assert Model.group_name == "model" and Model.__doc__ == "The model's part."
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.dim = 4
    assert group_names(Toy) == {"model": ["dim", "kind"], "fit": ["lr"]}


def test_group_of_unknown_name_is_refused():
    with pytest.raises(ValueError, match="no field in group 'nope'"):
        config_group(Toy, "nope")


def test_choices_refused_by_validation_and_by_argparse(capsys):
    with pytest.raises(CatvecError, match="kind must be one of a, b; got 'c'"):
        build_config(Toy, kind="c")
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Toy)
    assert parser.parse_args(["--kind", "b"]).kind == "b"
    with pytest.raises(SystemExit):
        parser.parse_args(["--kind", "c"])
    assert "invalid choice: 'c'" in capsys.readouterr().err


# ---- PretrainConfig's groups -----------------------------------------------------------

from catvec.pretraining.config import GROUPS, EventOptions, PretrainConfig, SequenceRules  # noqa: E402


def test_every_pretrain_field_lies_in_exactly_one_group():
    fields = [f.name for f in dataclasses.fields(PretrainConfig)]
    by_group = group_names(PretrainConfig)
    assert "" not in by_group  # no field without a group
    in_classes = [f.name for group in GROUPS for f in dataclasses.fields(group)]
    assert sorted(in_classes) == sorted(fields)  # each field once, in the group class of its group
    assert {g.group_name for g in GROUPS} == set(by_group)


def test_group_properties_parse_once():
    cfg = build_config(PretrainConfig, session_gap="30m", memory="1GB", holdout="last2", basket_col="")
    assert SequenceRules.of(cfg).session_gap_seconds == 1800.0
    assert SequenceRules.of(cfg).holdout_items == 2
    assert EventOptions.of(cfg).path == cfg.events_path and EventOptions.of(cfg).key_col == "user_id"
    assert "events" not in EventOptions.of(cfg).reading()


CHOICE_FIELDS = [f.name for f in dataclasses.fields(PretrainConfig) if f.metadata.get("choices")]


def test_the_closed_sets_are_declared_as_choices():
    assert set(CHOICE_FIELDS) == {"time_unit", "engine", "holdout", "tune_search", "scorer"}


@pytest.mark.parametrize("name", CHOICE_FIELDS)
def test_a_value_outside_choices_is_refused_in_one_line(name, capsys):
    from catvec.cli.main import main

    allowed = PretrainConfig.__dataclass_fields__[name].metadata["choices"]
    with pytest.raises(CatvecError, match=f"^{name} must be one of .*; got 'bogus'$"):
        build_config(PretrainConfig, **{name: "bogus"})
    with pytest.raises(SystemExit) as exit_info:  # the CLI: argparse reads the same choices
        main(["pretrain", "--" + name.replace("_", "-"), "bogus"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("catvec: error:")
    assert "invalid choice: 'bogus'" in err and all(repr(a) in err for a in allowed)


def _other(value):
    """A different value of the same type (the cache key is a digest: any change counts)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return (value or "") + "x"


# what decides a corpus (the key's groups): every reading option but the input's path, every sequence rule
CORPUS_FIELDS = [f.name for g in (EventOptions, SequenceRules) for f in dataclasses.fields(g) if f.name != "events"]


@pytest.mark.parametrize("name", CORPUS_FIELDS)
def test_the_corpus_key_changes_with_every_option_that_changes_the_corpus(name):
    from catvec.pretraining.corpus_cache import corpus_cache_key

    cfg = PretrainConfig()
    other = dataclasses.replace(cfg, **{name: _other(getattr(cfg, name))})
    key = corpus_cache_key(EventOptions.of(cfg), SequenceRules.of(cfg), "sha256:00")
    assert corpus_cache_key(EventOptions.of(other), SequenceRules.of(other), "sha256:00") != key
    assert corpus_cache_key(EventOptions.of(cfg), SequenceRules.of(cfg), "sha256:01") != key  # other bytes


def test_the_corpus_key_ignores_where_the_input_lies():
    from catvec.pretraining.corpus_cache import corpus_cache_key

    a, b = PretrainConfig(events="a/events.csv"), PretrainConfig(events="b/events.csv")
    assert (corpus_cache_key(EventOptions.of(a), SequenceRules.of(a), "sha256:00")
            == corpus_cache_key(EventOptions.of(b), SequenceRules.of(b), "sha256:00"))


def test_a_run_reuses_the_corpus_unless_an_option_of_the_corpus_changed(tmp_path, write_csv):
    from catvec.pretraining.pipeline import pretrain

    rows = ["user_id,item_id,timestamp"] + [f"u{u},i{(u * 7 + k) % 23},{1_700_000_000 + 60 * k}"
                                            for u in range(40) for k in range(8)]
    events = write_csv("events.csv", "\n".join(rows) + "\n")
    fixed = dict(events=str(events), out=str(tmp_path / "out"), window=3, epochs=1, ns_exponent=0.75, sample=0.0,
                 scorer="cosine", min_support=1, gate=False, align=False, workers=1)

    def cached(**changed) -> bool:
        result = pretrain(build_config(PretrainConfig, **fixed, **changed))
        return result.manifest["timings"]["corpus_cached"]

    assert not cached(dim=8)
    # training, scoring, output and extraction settings do not change the corpus
    assert cached(dim=16, seed=2, negative=3, keep=5, shards=2, strict=False)
    # the sequence rules and the reading options do
    assert not cached(dim=8, min_count=2)
    assert not cached(dim=8, time_col="")


# ---- FinetuneConfig's groups -----------------------------------------------------------

from catvec.finetuning import config as ft  # noqa: E402
from catvec.finetuning.checkpoint import checkpoint_key  # noqa: E402
from catvec.finetuning.config import FinetuneConfig  # noqa: E402

FINETUNE_CHOICES = [f.name for f in dataclasses.fields(FinetuneConfig) if "choices" in f.metadata]


def test_finetune_groups_cover_each_field_once():
    names = [f.name for f in dataclasses.fields(FinetuneConfig)]
    groups = group_names(FinetuneConfig)
    assert "" not in groups and sorted(groups) == sorted(g.group_name for g in ft.GROUPS)
    held = [f.name for g in ft.GROUPS for f in dataclasses.fields(g)]
    assert sorted(held) == sorted(names) and len(held) == len(set(held))
    cfg = FinetuneConfig(hidden="32", hash_buckets="item_id=10", pretrained_cols="a,b=other", emb_dims="c=4")
    assert ft.Model.of(cfg).hidden_sizes == [32] and ft.Init.of(cfg).hash_bucket_map == {"item_id": 10}
    assert ft.Table.of(cfg).pretrained_map == {"a": "artifacts", "b": "other"}
    assert ft.Model.of(cfg).emb_dim_overrides == {"c": 4}
    assert ft.Init.of(cfg).buckets_of("item_id") == 10 and ft.Init.of(cfg).buckets_of("color") == 0


def test_finetune_closed_sets_are_declared_once():
    assert {"mode", "task", "oov_init", "pretrained_input", "emb_size_rule", "class_weight", "normalize", "auto",
            "key_stats", "solver", "device", "metric"} <= set(FINETUNE_CHOICES)


@pytest.mark.parametrize("name", FINETUNE_CHOICES)
def test_each_finetune_choice_refuses_a_bad_value_in_one_line(name):
    with pytest.raises(CatvecError, match=rf"^{name} must be one of .*; got 'nope'$"):
        build_config(FinetuneConfig, **{name: "nope"})


def test_setup_routes_each_change_to_its_group():
    setup = ft.Setup.of(FinetuneConfig())
    changed = setup.replace(mode="frozen", hidden="", weight_decay=1e-3)
    assert (changed.init.mode, changed.model.hidden, changed.fit.weight_decay) == ("frozen", "", 1e-3)
    assert changed.fit.lr == setup.fit.lr and changed.value("mode") == "frozen"
    with pytest.raises(KeyError, match="out"):
        setup.replace(out="elsewhere")


def _key(cfg, checksum="sha256:table", matrix=None):
    import numpy as np

    from catvec.base.vectors import Vectors

    matrix = np.eye(3, dtype=np.float32) if matrix is None else matrix
    vectors = {"artifacts/latest": Vectors(keys=["a", "b", "c"], matrix=matrix)}
    setup = ft.Setup.of(cfg)
    return checkpoint_key(checksum, vectors, ft.Table.of(cfg), ft.Split.of(cfg), setup.init, setup.model, setup.fit)


def test_checkpoint_key_follows_the_inputs_and_the_fit_groups_only():
    import numpy as np

    base = FinetuneConfig()
    key = _key(base)
    assert key == _key(FinetuneConfig()) and len(key) == 24
    # what the fit reads: the table, the weights, and every group of one fit
    assert _key(base, checksum="sha256:other") != key
    assert _key(base, matrix=np.eye(3, dtype=np.float32) * 2) != key
    for change in ({"target": "y"}, {"val_fraction": 0.3}, {"oov_init": "zeros"}, {"warm_start": "models/latest"},
                   {"hidden": "8"}, {"lr": 0.01}, {"seed": 1}):
        assert _key(dataclasses.replace(base, **change)) != key, change
    # what only writes or reports: out, resume, keep, and what else is compared
    for change in ({"out": "elsewhere"}, {"resume": True}, {"keep": 2}, {"compare": True}, {"auto": "off"}):
        assert _key(dataclasses.replace(base, **change)) == key, change

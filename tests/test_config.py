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

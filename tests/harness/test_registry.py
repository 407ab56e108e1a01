"""The component registry: lazy factories, option validation, clear errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import pytest
from annotated_types import Ge
from pydantic import PositiveInt

from harness.errors import UserError
from harness.registry import ComponentSpec, Registry


def margin_loss(ctx, *, margin: float = 0.2, hardest: bool = True):
    return ("built", ctx, margin, hardest)


def spec(name: str = "toy", factory=margin_loss, plugin: str = "p1", kind: str = "loss") -> ComponentSpec:
    return ComponentSpec(kind=kind, name=name, factory=factory, plugin=plugin)


def test_string_factory_is_not_imported_until_loaded():
    registry = Registry()
    registry.add(spec(factory="itr_test_never_imported_module:Thing"))
    assert "itr_test_never_imported_module" not in sys.modules
    with pytest.raises(UserError, match="plugin 'p1': cannot import"):
        registry.get("loss", "toy").load()


def test_build_passes_context_and_validated_options():
    built = spec().build({"margin": 1}, "exp.toml: methods.m.loss", ctx="CTX")
    assert built == ("built", "CTX", 1.0, True) and isinstance(built[2], float), "an int is a float"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"margin": "0.1"}, "exp.toml: methods.m.loss.margin: input should be a valid number (got '0.1'); write it without quotes"),
        ({"hardest": "true"}, "exp.toml: methods.m.loss.hardest: input should be a valid boolean (got 'true'); write it without quotes"),
        ({"hardest": 1}, "exp.toml: methods.m.loss.hardest: input should be a valid boolean (got 1)"),
    ],
    ids=["text-for-float", "text-for-bool", "int-for-bool"],
)
def test_numbers_and_booleans_given_as_anything_else_are_refused_naming_the_key(options, message):
    with pytest.raises(UserError) as refused:
        spec().validate_options(options, "exp.toml: methods.m.loss")
    assert str(refused.value) == message


def test_strictness_reaches_inside_optional_ranged_and_container_options():
    def factory(ctx, *, depth: Annotated[int, Ge(1)] | None = None, sizes: tuple[float, ...] = (1.0,), path: Path = Path(".")):
        return depth

    checked = spec(factory=factory).validate_options({"depth": 2, "sizes": [1, 0.5], "path": "data"}, "f")
    assert checked == {"depth": 2, "sizes": (1.0, 0.5), "path": Path("data")}, "lists become tuples, text paths"
    for options, key in (({"depth": "2"}, "depth"), ({"depth": 2.0}, "depth"), ({"sizes": ["0.5"]}, "sizes.0")):
        with pytest.raises(UserError, match=rf"^f\.{key}: input should be a valid"):
            spec(factory=factory).validate_options(options, "f")


def test_kinds_without_context_are_called_with_options_only():
    dataset = spec(kind="dataset", factory=lambda *, root="x": ("dataset", root))
    assert dataset.build({"root": "y"}, "where") == ("dataset", "y")


def test_unknown_option_names_the_option_and_suggests_the_closest():
    with pytest.raises(UserError, match=r"exp.toml: unknown option 'margn' .*did you mean 'margin'"):
        spec().validate_options({"margn": 1.0}, "exp.toml")


def test_wrong_option_type_names_the_key():
    with pytest.raises(UserError, match=r"exp.toml\.margin: input should be a valid number.*got .wide."):
        spec().validate_options({"margin": "wide"}, "exp.toml")


def test_defaults_come_from_the_factory_signature():
    assert spec().defaults() == {"margin": 0.2, "hardest": True}


def test_duplicate_name_is_an_error_naming_both_plugins():
    registry = Registry()
    registry.add(spec(plugin="first-plugin"))
    with pytest.raises(UserError, match="registered twice: by plugin 'first-plugin' and by plugin 'second-plugin'"):
        registry.add(spec(plugin="second-plugin"))


def test_unknown_name_suggests_the_closest_registered_one():
    registry = Registry()
    registry.add(spec(name="hardest-negative-triplet"))
    with pytest.raises(UserError, match="did you mean 'hardest-negative-triplet'"):
        registry.get("loss", "hardest-negative-triplt")


def test_unknown_kind_is_refused():
    with pytest.raises(UserError, match="unknown component kind 'losses'"):
        Registry().add(spec(kind="losses"))


def test_missing_required_option_is_named():
    dataset = spec(kind="dataset", factory=lambda *, path, name=None: None)
    with pytest.raises(UserError, match="exp.toml: datasets.0.options: dataset 'toy' needs the option 'path'"):
        dataset.validate_options({}, "exp.toml: datasets.0.options")


def test_annotated_range_constraints_are_enforced():
    def factory(ctx, *, heads: PositiveInt = 8):
        return heads

    with pytest.raises(UserError, match="heads: input should be greater than 0"):
        spec(factory=factory).validate_options({"heads": 0}, "exp.toml")

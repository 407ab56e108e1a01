"""`itr describe NAME`: a component's options with types, defaults and ranges, what it consumes
and produces, and a method's resolved defaults; unknown and ambiguous names are one line."""

from __future__ import annotations

import re
import textwrap
from typing import Annotated, Literal, Optional

import pytest
from annotated_types import Ge, Gt, Interval, Le
from pydantic import Field, PositiveInt

from harness.describe import allowed_values, type_name
from tests.helpers import itr_in_process

GATED_HEAD = '''
from typing import Literal

import torch
from torch import nn

from harness.hookspecs import hookimpl
from harness.options import AtLeastOne, Fraction


class GatedHead(nn.Module):
    """A gated cosine: s = w · cos(v, u).

    What follows the first paragraph is not the summary.
    """

    accepts = ("vectors", "sets")

    def __init__(self, ctx, *, weight: Fraction = 0.5, layers: AtLeastOne = 2, mode: Literal["sum", "max"] = "sum",
                 tag: str | None = None, scale: float = 1.0):
        super().__init__()

    def forward(self, images, texts):
        return images @ texts.T


@hookimpl
def register_similarity_heads(register):
    register("gated", GatedHead)
'''


@pytest.fixture(scope="module")
def plugins_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("describe-plugins")
    (folder / "gating.py").write_text(textwrap.dedent(GATED_HEAD))
    return folder


def describe(*args: str, plugins_dir=None):
    prefix = ("--plugins-dir", str(plugins_dir)) if plugins_dir is not None else ()
    return itr_in_process(*prefix, "describe", *args)


def option_rows(stdout: str) -> dict[str, list[str]]:
    """option -> [type, default, allowed] from the printed table (columns split on 2+ spaces)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("option "))
    return {cells[0]: cells[1:] + [""] * (4 - len(cells)) for cells in (re.split(r"\s{2,}", line.strip()) for line in lines[start + 2 :])}


def test_a_component_shows_its_summary_and_each_option_with_type_default_and_range(plugins_dir):
    out = describe("gated", plugins_dir=plugins_dir)
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "similarity-head:gated (plugin gating; itr_plugins_dir.gating:GatedHead)"
    assert lines[1] == "A gated cosine: s = w · cos(v, u)."
    assert option_rows(out.stdout) == {
        "weight": ["float", "0.5", "[0, 1]"],
        "layers": ["int", "2", "≥ 1"],
        "mode": ["str", '"sum"', '"sum" | "max"'],
        "tag": ["str | None", "none", ""],
        "scale": ["float", "1.0", ""],
    }


def test_a_head_shows_the_inputs_it_declares(plugins_dir):
    out = describe("similarity-head:gated", plugins_dir=plugins_dir)
    consumes = next(line for line in out.stdout.splitlines() if line.startswith("consumes: "))
    assert "global vectors: Tensor [n, D]" in consumes and "vector sets for images and captions" in consumes
    assert consumes.endswith("(declared: accepts)")
    assert "produces: scores [n_images, n_captions]" in out.stdout


def test_encoders_and_undeclared_heads_read_what_flows_from_forward_type_hints():
    encoder = describe("scan-region")
    assert "produces: vector sets (VectorSets [n, N_max, D] + lengths)" in encoder.stdout
    head = describe("cosine")
    assert "consumes: global vectors [n, D] or vector sets" in head.stdout and "forward's type hints" in head.stdout


def test_a_method_shows_its_resolved_defaults_as_dotted_keys():
    out = describe("ascl")
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("method:ascl (plugin ascl")
    assert {
        "similarity_head.u1 = 0.8",
        "similarity_head.global_pooling = \"pair\"",
        "stages.main.loss.temperature = 0.1",
        'generators.positives = [{ name = "truncate-half", max_words = 60 }, { name = "concat-siblings" }]',
        "train.steps_per_epoch = none",
    } <= set(lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cosin"], "error: itr describe: unknown component or method 'cosin' (did you mean 'cosine'?)"),
        (["vse-inf-bigru"], "say which: text-encoder:vse-inf-bigru or method:vse-inf-bigru"),
        (["--kind", "los", "cosine"], "unknown kind 'los' (did you mean 'loss'?)"),
        (["--kind", "loss", "cosine"], "error: itr describe: unknown loss 'cosine'"),
    ],
    ids=["typo", "ambiguous", "kind-typo", "wrong-kind"],
)
def test_a_bad_name_is_one_line_with_exit_2(args, message):
    out = describe(*args)
    assert out.code == 2 and out.stdout == "" and out.stderr.count("\n") == 1
    assert message in out.stderr


def test_kind_picks_one_of_two_components_with_the_same_name():
    out = describe("--kind", "method", "vse-inf-bigru")
    assert out.code == 0 and out.stdout.startswith("method:vse-inf-bigru ")


def test_an_unknown_name_names_the_plugins_that_failed_to_load(tmp_path):
    (tmp_path / "lost.py").write_text("raise ImportError('no torch here')\n")
    out = describe("lost-head", plugins_dir=tmp_path)
    assert out.code == 2
    assert out.stderr.strip().splitlines()[-1].endswith("; plugin 'lost' did not load (import failed: ImportError: no torch here)")


@pytest.mark.parametrize(
    ("hint", "name", "allowed"),
    [
        (Annotated[float, Interval(ge=0, lt=1)], "float", "[0, 1)"),
        (Annotated[float, Gt(0)], "float", "> 0"),
        (Annotated[int, Le(5)], "int", "≤ 5"),
        (PositiveInt, "int", "> 0"),
        (Annotated[float, Field(ge=0.5)], "float", "≥ 0.5"),
        (Optional[Annotated[int, Ge(1)]], "int | None", "≥ 1"),
        (Literal["t2i", "i2t"], "str", '"t2i" | "i2t"'),
        (dict[str, int], "dict[str, int]", ""),
    ],
)
def test_types_and_ranges_read_as_written(hint, name, allowed):
    assert (type_name(hint), allowed_values(hint)) == (name, allowed)

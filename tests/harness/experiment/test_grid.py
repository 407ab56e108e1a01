"""Grid axes in method blocks: the cells, their labels, and invalid grids refused before running."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.experiment.grid import Cell, expand_cells, ran_with, render_value
from harness.experiment.plan import plan
from tests.helpers import itr_in_process, write_experiment

BASE = 'name = "t"\n[[datasets]]\nname = "coco-demo"\n'


def test_a_block_without_grid_is_one_cell_with_its_own_label():
    [cell] = expand_cells("vse++", {"train": {"lr": 1e-3}}, "f")
    assert cell.label == "vse++" and cell.overrides == {"train": {"lr": 1e-3}} and not cell.axes


def test_axes_form_the_cartesian_product_merged_into_the_block():
    block = {"train": {"batch_size": 32}, "grid": {"train.lr": [1e-3, 2e-3], "stages.main.epochs": [1, 2, 3]}}
    cells = expand_cells("m", block, "f")
    assert len(cells) == 6
    assert {(c.overrides["train"]["lr"], c.overrides["stages"]["main"]["epochs"]) for c in cells} == {
        (lr, epochs) for lr in (1e-3, 2e-3) for epochs in (1, 2, 3)
    }
    assert all(c.overrides["train"]["batch_size"] == 32 for c in cells)
    assert cells[0].label == "m[lr=0.001,epochs=1]"
    assert cells[0].axes == {"train.lr": "0.001", "stages.main.epochs": "1"}


def test_nested_and_quoted_axis_keys_are_the_same_axis():
    nested = expand_cells("m", {"grid": {"similarity_head": {"u1": [0.0, 1.0]}}}, "f")
    quoted = expand_cells("m", {"grid": {"similarity_head.u1": [0.0, 1.0]}}, "f")
    assert [c.overrides for c in nested] == [c.overrides for c in quoted]


def test_exclude_drops_matching_cells_and_include_adds_cells():
    block = {
        "grid": {
            "a.x": [1, 2],
            "a.y": [1, 2],
            "exclude": [{"a.x": 2, "a.y": 2}],
            "include": [{"similarity_head": {"name": "cosine"}}],
        }
    }
    cells = expand_cells("m", block, "f")
    assert [c.label for c in cells] == ["m[x=1,y=1]", "m[x=1,y=2]", "m[x=2,y=1]", "m[similarity_head=cosine]"]
    assert cells[-1].overrides == {"similarity_head": {"name": "cosine"}}


def test_labels_use_the_shortest_unique_key_suffix():
    cells = expand_cells("m", {"grid": {"image_encoder.embed_dim": [8], "text_encoder.embed_dim": [8]}}, "f")
    assert cells[0].label == "m[image_encoder.embed_dim=8,text_encoder.embed_dim=8]"


@pytest.mark.parametrize(
    "value, text",
    [(0.5, "0.5"), (True, "true"), ({"name": "cosine"}, "cosine"), ({"name": "c", "normalize": False}, "c(normalize=false)"),
     ([], "none"), ([{"name": "a"}, {"name": "b"}], "a+b")],
)
def test_axis_values_render_short(value, text):
    assert render_value(value) == text


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"train.lr": 0.1}, "train.lr: an axis needs a non-empty list of values"),
        ({"train.lr": []}, "train.lr: an axis needs a non-empty list of values"),
        ({}, "no axes"),
        ({"train.lr": [1.0], "exclude": [{"train.batch_size": 1}]}, "exclude.0: 'train.batch_size' is not an axis"),
        ({"train.lr": [1.0], "include": [{"train.lr": 1.0}]}, "two cells are both m[lr=1.0]"),
        ({"train.lr": [1.0], "exclude": {"train.lr": 1.0}}, "exclude: expected a list of non-empty tables"),
    ],
)
def test_invalid_grids_are_one_line_errors(grid, message):
    with pytest.raises(UserError, match="^f.grid") as caught:
        expand_cells("m", {"grid": grid}, "f")
    assert message in str(caught.value)


def test_plan_expands_grid_cells_with_datasets_and_seeds(tmp_path, registry):
    text = 'seeds = [0, 1]\n' + BASE + '[methods."vse++"]\n[methods."vse++".grid]\n"stages.main.loss.margin" = [0.1, 0.2]\n'
    _, jobs = plan(write_experiment(tmp_path, text), registry)
    assert [(job.label, job.seed) for job in jobs] == [
        ("vse++[margin=0.1]", 0), ("vse++[margin=0.1]", 1), ("vse++[margin=0.2]", 0), ("vse++[margin=0.2]", 1)
    ]
    assert {job.config.model_dump()["stages"]["main"]["loss"]["margin"] for job in jobs} == {0.1, 0.2}
    assert all(job.group == "vse++" for job in jobs) and len({job.config_hash for job in jobs}) == 4


def test_a_component_swap_axis_replaces_the_component_table(tmp_path, registry):
    text = BASE + '[methods.ascl]\nsimilarity_head.embed_dim = 64\n[methods.ascl.grid]\nsimilarity_head = [{ name = "ascl-fusion", embed_dim = 64 }, { name = "cosine" }]\n'
    _, jobs = plan(write_experiment(tmp_path, text), registry)
    assert [job.label for job in jobs] == ["ascl[similarity_head=ascl-fusion(embed_dim=64)]", "ascl[similarity_head=cosine]"]
    assert jobs[1].config.model_dump()["similarity_head"] == {"name": "cosine", "normalize": True}


def test_an_invalid_cell_is_refused_naming_the_cell(tmp_path, registry):
    text = BASE + '[methods."vse++"]\n[methods."vse++".grid]\n"train.lr" = [1e-3, -1.0]\n'
    with pytest.raises(UserError) as caught:
        plan(write_experiment(tmp_path, text), registry)
    assert "methods.vse++ (cell vse++[lr=-1.0]): train.lr: input should be greater than 0" in str(caught.value)


def test_an_unknown_dotted_key_is_refused_with_a_hint(tmp_path, registry):
    text = BASE + '[methods."vse++"]\n[methods."vse++".grid]\n"text_encoder.min_cont" = [1, 2]\n'
    with pytest.raises(UserError) as caught:
        plan(write_experiment(tmp_path, text), registry)
    assert "unknown option 'min_cont'" in str(caught.value) and "did you mean 'min_count'" in str(caught.value)


def test_two_labels_for_one_configuration_are_refused(tmp_path, registry):
    text = BASE + '[methods."vse++"]\n[methods.again]\nmethod = "vse++"\n'
    with pytest.raises(UserError, match="'vse\\+\\+' and 'again' are the same configuration"):
        plan(write_experiment(tmp_path, text), registry)


INCLUDE_GRID = BASE + """[methods.ascl]
[methods.ascl.grid]
"similarity_head.u1" = [0.0, 1.0]
include = [{ "generators.positive_weight" = 0.9 }, { similarity_head = { name = "cosine" } }]
[methods."vse++"]
"""
"""An ascl grid whose include cells leave the swept u1 alone, beside a block without a grid."""


def test_every_cell_shows_the_value_it_ran_with_for_every_key_of_its_block(tmp_path, registry):
    _, jobs = plan(write_experiment(tmp_path, INCLUDE_GRID), registry)
    axes = {job.label: dict(job.axes) for job in jobs}
    assert axes["ascl[u1=0.0]"] == {"similarity_head.u1": "0.0", "generators.positive_weight": "0.5", "similarity_head": "ascl-fusion"}
    assert axes["ascl[positive_weight=0.9]"]["similarity_head.u1"] == "0.8", "the recipe's u1, not a blank"
    assert axes["ascl[similarity_head=cosine]"]["similarity_head.u1"] == "-", "cosine has no u1"
    assert axes["vse++"] == {}, "a block without a grid has no axes"


def test_itr_plan_prints_a_column_per_grid_key(tmp_path):
    out = itr_in_process("plan", str(write_experiment(tmp_path, INCLUDE_GRID)))
    assert out.code == 0, out.stderr
    header, _, *rows = out.stdout.splitlines()
    assert header.split()[:4] == ["method", "similarity_head.u1", "generators.positive_weight", "similarity_head"]
    include = next(row for row in rows if row.startswith("ascl[positive_weight=0.9]"))
    assert include.split()[1:4] == ["0.8", "0.9", "ascl-fusion"]


def test_ran_with_keeps_the_cells_own_values_and_renders_resolved_components_by_name():
    cell = Cell("m[x=1]", {}, {"a.x": "1"}, ("a.x", "head", "list"))
    resolved = {"a": {"x": 1}, "head": {"name": "cosine", "normalize": True}, "list": [{"name": "p", "k": 1}, {"name": "q"}]}
    assert ran_with(cell, resolved) == {"a.x": "1", "head": "cosine", "list": "p+q"}

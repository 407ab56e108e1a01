"""Dotted keys and the deep merge of configuration tables."""

from __future__ import annotations

import pytest

from harness.config.dotted import deep_merge, flatten, nest, parse_assignments, set_dotted
from harness.errors import UserError


def test_swapping_a_component_drops_the_old_components_options():
    base = {"loss": {"name": "triplet", "margin": 0.2}, "train": {"lr": 1}}
    assert deep_merge(base, {"loss": {"name": "infonce", "temperature": 0.1}})["loss"] == {"name": "infonce", "temperature": 0.1}
    assert deep_merge(base, {"loss": {"margin": 0.5}})["loss"] == {"name": "triplet", "margin": 0.5}


def test_deep_merge_replaces_leaves_and_merges_tables_without_touching_its_inputs():
    base = {"train": {"lr": 1, "epochs": 2}, "name": "x"}
    assert deep_merge(base, {"train": {"lr": 5}}) == {"train": {"lr": 5, "epochs": 2}, "name": "x"}
    assert base["train"]["lr"] == 1


def test_flatten_and_nest_are_inverse_on_tables_of_leaves():
    tree = {"similarity_head": {"embed_dim": 32, "u1": 0.8}, "train": {"lr": 1e-3}, "texts": {}}
    flat = dict(flatten(tree))
    assert flat == {"similarity_head.embed_dim": 32, "similarity_head.u1": 0.8, "train.lr": 1e-3, "texts": {}}
    assert nest(flat) == tree


def test_flatten_can_keep_component_tables_whole():
    entry = {"similarity_head": {"name": "cosine"}, "train": {"lr": 1}}
    assert dict(flatten(entry, keep=lambda table: "name" in table)) == {"similarity_head": {"name": "cosine"}, "train.lr": 1}


def test_nest_refuses_a_key_that_is_both_a_value_and_a_table():
    with pytest.raises(UserError, match="option 'train.lr': 'train' is both a value and a table"):
        nest({"train": 1, "train.lr": 2})


def test_set_dotted_merges_one_value_deep_inside_a_copy():
    tree = {"stages": {"main": {"epochs": 3}}}
    assert set_dotted(tree, "stages.main.lr", 0.1) == {"stages": {"main": {"epochs": 3, "lr": 0.1}}}
    assert tree == {"stages": {"main": {"epochs": 3}}}


def test_command_line_assignments_read_json_values_and_keep_the_rest_as_text():
    assert parse_assignments(("a=1", "b=true", "c=[1, 2]", "d=/data/coco")) == {"a": 1, "b": True, "c": [1, 2], "d": "/data/coco"}
    with pytest.raises(UserError, match="--option 'novalue': expected KEY=VALUE"):
        parse_assignments(("novalue",))

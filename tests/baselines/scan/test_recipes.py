"""The `scan` recipe resolves through experiment files like any method (docs/methods/scan.md)."""

from __future__ import annotations

import pytest

import baselines.scan.plugin
from harness.errors import UserError
from harness.experiment.plan import plan
from harness.plugin_manager import PluginHost

BASE = 'name = "t"\n[[datasets]]\nname = "coco-demo"\n'


@pytest.fixture(scope="module")
def registry():
    return PluginHost(extra_plugins=[baselines.scan.plugin]).registry


def plan_one(tmp_path, registry, methods: str):
    path = tmp_path / "exp.toml"
    path.write_text(BASE + methods)
    _, jobs = plan(path, registry)
    return jobs


def test_scan_defaults_are_the_papers_t_i_avg_recipe(tmp_path, registry):
    [job] = plan_one(tmp_path, registry, "[methods.scan]\n")
    resolved = job.config.model_dump()
    components = job.components()
    assert (components["image_encoder"], components["text_encoder"]) == ("scan-region", "scan-bigru")
    assert (components["similarity_head"], components["losses"]) == ("scan-attention", "hardest-negative-triplet")
    assert resolved["similarity_head"] == {
        "name": "scan-attention",
        "direction": "t2i",
        "lambda_softmax": 9.0,
        "aggregation": "avg",
        "lambda_lse": 6.0,
        "pair_chunk": 16384,
        "checkpoint_blocks": True,
    }
    assert resolved["text_encoder"]["bidirectional"] is True
    assert resolved["stages"]["main"]["loss"]["margin"] == 0.2
    assert list(resolved["stages"]) == ["main"]
    assert resolved["stages"]["main"]["epochs"] == 30
    train = resolved["train"]
    assert (train["batch_size"], train["optimizer"], train["lr"], train["lr_decay_every"], train["grad_clip"]) == (
        128, "adam", 2e-4, 15, 2.0
    )


def test_every_scan_knob_is_a_config_key(tmp_path, registry):
    methods = (
        '[methods.scan-i2t-lse]\nmethod = "scan"\n'
        'similarity_head = { direction = "i2t", aggregation = "lse", lambda_softmax = 4.0, lambda_lse = 20.0 }\n'
        'stages.main.loss = { name = "sum-hinge-triplet", margin = 0.1 }\n'
    )
    [job] = plan_one(tmp_path, registry, methods)
    head = job.config.model_dump()["similarity_head"]
    assert (head["direction"], head["aggregation"], head["lambda_softmax"], head["lambda_lse"]) == ("i2t", "lse", 4.0, 20.0)
    assert job.config.model_dump()["stages"]["main"]["loss"] == {"name": "sum-hinge-triplet", "margin": 0.1, "mask_same_image": False}


@pytest.mark.parametrize("key, value", [("direction", '"both"'), ("aggregation", '"max"'), ("lambda_softmax", '"nine"')])
def test_invalid_head_options_are_rejected_at_plan_time(tmp_path, registry, key, value):
    with pytest.raises(UserError, match=f"similarity_head.{key}"):
        plan_one(tmp_path, registry, f"[methods.scan]\nsimilarity_head.{key} = {value}\n")

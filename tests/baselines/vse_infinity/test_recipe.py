"""The vse-inf and vse-inf-bigru recipes: registration, planning, resolved defaults, a short fit.

Until the lead adds the ``vse-infinity`` entry point, the plugin module is passed to the host
directly; once it is an entry point the host finds it there.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

import baselines.vse_infinity.plugin
from harness.errors import UserError
from harness.experiment.plan import plan
from harness.interfaces import BuildContext
from harness.plugin_manager import PluginHost
from harness.training.model import RetrievalModel, SplitInputs
from harness.training.trainer import Stage, fit

DOCUMENTED_OPTIONS = {
    ("image-encoder", "vse-inf-region"): ["feature", "embed_dim", "mlp_hidden", "residual_mlp", "pooling", "region_drop", "normalize"],
    ("text-encoder", "vse-inf-bigru"): ["word_dim", "embed_dim", "min_count", "bidirectional", "pooling", "token_mask", "normalize"],
    ("text-encoder", "hf-text"): ["model_path", "embed_dim", "pooling", "lr_scale", "max_length", "token_mask", "normalize"],
}

BASE = 'name = "t"\n[[datasets]]\nname = "coco-demo"\n'
SMALL = """
[methods.vse-inf]
image_encoder.embed_dim = 64
text_encoder.embed_dim = 64
train.batch_size = 32
stages.warmup.epochs = 1
stages.main.epochs = 1
"""


@pytest.fixture(scope="module")
def registry():
    registry = PluginHost().registry
    if "vse-inf" in registry.names("method"):
        return registry
    return PluginHost(extra_plugins=[baselines.vse_infinity.plugin]).registry


def plan_one(tmp_path, registry, methods: str):
    path = tmp_path / "exp.toml"
    path.write_text(BASE + methods)
    _, jobs = plan(path, registry)
    return jobs


@pytest.mark.parametrize("key, options", DOCUMENTED_OPTIONS.items())
def test_factory_options_are_exactly_the_documented_ones(registry, key, options):
    assert list(registry.get(*key).options_schema()) == options


def test_plugin_registers_its_encoders_and_its_three_methods(registry):
    plugin = registry.get("method", "vse-inf").plugin
    registered = {(spec.kind, spec.name) for spec in registry.by_plugin(plugin)}
    assert registered == {*DOCUMENTED_OPTIONS, ("method", "vse-inf"), ("method", "vse-inf-bigru"), ("method", "vse-inf-grid")}


def test_vse_inf_warms_up_one_epoch_with_vse0_then_continues_with_hardest_negatives(tmp_path, registry):
    [job] = plan_one(tmp_path, registry, SMALL)
    stages = job.config.stages
    assert list(stages) == ["warmup", "main"]
    assert (stages["warmup"].epochs, stages["warmup"].loss.name) == (1, "sum-hinge-triplet")
    assert (stages["main"].epochs, stages["main"].loss.name) == (1, "hardest-negative-triplet")
    assert stages["main"].restart is False
    assert job.config.model_dump()["stages"]["main"]["loss"]["margin"] == job.config.model_dump()["stages"]["warmup"]["loss"]["margin"] == 0.2


def test_vse_inf_defaults_follow_the_reference_recipe(tmp_path, registry):
    [job] = plan_one(tmp_path, registry, "[methods.vse-inf]\n")
    train = job.config.train
    assert (train.optimizer, train.lr, train.weight_decay, train.lr_decay_every, train.grad_clip, train.batch_size) == (
        "adamw", 5e-4, 1e-4, 15, 2.0, 128
    )
    assert [stage.epochs for stage in job.config.stages.values()] == [1, 24]
    assert job.config.model_dump()["image_encoder"] == {
        "name": "vse-inf-region", "feature": "regions", "embed_dim": 1024, "mlp_hidden": 512,
        "residual_mlp": True, "pooling": "gpo", "region_drop": 0.2, "normalize": True,
    }
    assert job.config.model_dump()["text_encoder"] == {
        "name": "hf-text", "model_path": None, "embed_dim": 1024, "pooling": "gpo", "lr_scale": 0.1,
        "max_length": 64, "token_mask": 0.2, "normalize": True,
    }
    assert job.config.model_dump()["similarity_head"]["name"] == "cosine"


def test_vse_inf_overrides_reach_the_resolved_config(tmp_path, registry):
    [job] = plan_one(tmp_path, registry, SMALL)
    assert job.config.model_dump()["image_encoder"]["embed_dim"] == job.config.model_dump()["text_encoder"]["embed_dim"] == 64
    assert job.config.train.batch_size == 32


def test_vse_inf_bigru_uses_the_bigru_text_encoder_and_the_codes_weight_decay(tmp_path, registry):
    [job] = plan_one(tmp_path, registry, "[methods.vse-inf-bigru]\n")
    assert job.config.model_dump()["text_encoder"] == {
        "name": "vse-inf-bigru", "word_dim": 300, "embed_dim": 1024, "min_count": 4, "bidirectional": True,
        "pooling": "gpo", "token_mask": 0.2, "normalize": True,
    }
    assert (job.config.train.optimizer, job.config.train.weight_decay) == ("adamw", 0.01)
    assert job.config.stages["main"].restart is False


def test_every_ablated_knob_is_an_option(tmp_path, registry):
    ablation = """
[methods.ablation]
method = "vse-inf"
image_encoder.pooling = "max"
image_encoder.region_drop = 0.0
image_encoder.residual_mlp = false
text_encoder.pooling = "mean"
text_encoder.token_mask = 0.0
text_encoder.lr_scale = 1.0
"""
    [job] = plan_one(tmp_path, registry, ablation)
    assert job.config.model_dump()["image_encoder"]["pooling"] == "max" and job.config.model_dump()["text_encoder"]["lr_scale"] == 1.0


def test_an_unknown_pooling_kind_is_rejected_at_plan_time(tmp_path, registry):
    with pytest.raises(UserError, match=r"image_encoder.pooling: input should be 'gpo', 'mean' or 'max'"):
        plan_one(tmp_path, registry, '[methods.vse-inf]\nimage_encoder.pooling = "avg"\n')


def test_vse_inf_trains_through_both_stages_on_synthetic_features(tmp_path, registry):
    """The planned job's components, built through the registry, fit 1 + 1 epochs end to end."""
    [job] = plan_one(tmp_path, registry, SMALL)
    torch.manual_seed(0)
    colors, things = ("red", "blue", "green", "black"), ("cup", "dog", "ball", "book")
    captions = [f"a {color} {thing} on the table" for color in colors for thing in things]
    ctx = BuildContext(image_feature_shapes={"regions": (6, 12)}, train_captions=captions, frozen_text=object())

    def build(kind, role):
        options = {key: value for key, value in job.config.model_dump()[role].items() if key != "name"}
        return registry.get(kind, job.config.model_dump()[role]["name"]).build(options, role, ctx)

    model = RetrievalModel(
        build("image-encoder", "image_encoder"),
        build("text-encoder", "text_encoder"),
        build("similarity-head", "similarity_head"),
    )
    data = SplitInputs(
        image_features={"regions": torch.randn(16, 6, 12)},
        text_inputs=model.text_encoder.prepare(captions),
        image_of_caption=torch.arange(16),
        captions=captions,
    )
    stages = [
        Stage(name, stage.epochs, registry.get("loss", stage.loss.name).build(stage.loss.options, name, ctx), stage.lr, stage.restart)
        for name, stage in job.config.stages.items()
    ]
    before = model.text_encoder.transformer.embeddings.word_embeddings.weight.detach().clone()
    history = fit(model, data, stages, job.config.train, torch.device("cpu"))
    assert [record["stage"] for record in history] == ["warmup", "main"]
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in history)
    assert history[0]["lr"] == history[1]["lr"] == 5e-4  # one schedule, no decay before epoch 15
    assert not torch.equal(before, model.text_encoder.transformer.embeddings.word_embeddings.weight)

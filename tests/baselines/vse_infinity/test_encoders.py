"""VSE∞ region image encoder and BiGRU caption encoder (docs/methods/vse-infinity.md)."""

import math

import pytest
import torch

from baselines.vse_infinity.encoders import GRUTokenTextEncoder, RegionImageEncoder
from baselines.vse_infinity.pooling import GPO, AvgPool, MaxPool
from harness.embeddings import VectorSets
from harness.errors import UserError
from harness.interfaces import BuildContext
from harness.plugin_manager import PluginHost

TRAIN_CAPTIONS = [
    "a dog runs on the grass",
    "a cat sleeps on a red sofa",
    "two dogs play with a ball on the grass",
    "a man rides a horse",
]
CAPTIONS = ["a dog runs on the grass", "a man rides a red horse on the grass", "a cat"]


class StubFrozenText:
    def encode_texts(self, texts):
        raise AssertionError("the VSE∞ encoders do not use the frozen text backbone")


def make_ctx(**shapes):
    return BuildContext(
        image_feature_shapes=shapes or {"regions": (6, 8), "pooled": (8,)},
        train_captions=TRAIN_CAPTIONS,
        frozen_text=StubFrozenText(),
    )


def make_image_encoder(**options):
    torch.manual_seed(0)
    return RegionImageEncoder(make_ctx(), **{"embed_dim": 5, "mlp_hidden": 4, **options})


def make_text_encoder(**options):
    torch.manual_seed(0)
    return GRUTokenTextEncoder(make_ctx(), **{"word_dim": 6, "embed_dim": 5, "min_count": 1, **options})


def regions(batch=4):
    torch.manual_seed(1)
    return {"regions": torch.randn(batch, 6, 8)}


# -- image --------------------------------------------------------------------------------------


def test_region_encoder_output_is_unit_norm_with_embed_dim():
    out = make_image_encoder().eval()(regions())
    assert out.shape == (4, 5)
    assert torch.allclose(out.norm(dim=-1), torch.ones(4), atol=1e-6)


def test_region_head_is_xavier_linear_plus_residual_mlp():
    encoder = make_image_encoder(embed_dim=200).eval()
    bound = math.sqrt(6) / math.sqrt(8 + 200)
    assert encoder.fc.weight.abs().max() <= bound and torch.equal(encoder.fc.bias, torch.zeros(200))
    linear, norm, relu, out = encoder.mlp
    assert (linear.in_features, linear.out_features, norm.num_features, out.out_features) == (8, 4, 4, 200)
    x = regions()["regions"]
    embedded = encoder.embed_regions(VectorSets(x, torch.full((4,), 6)))
    assert torch.allclose(embedded.vectors, encoder.fc(x) + out(relu(norm(linear(x.reshape(-1, 8))))).reshape(4, 6, 200), atol=1e-5)


def test_residual_mlp_false_gives_the_plain_linear_head():
    encoder = make_image_encoder(residual_mlp=False, pooling="mean", normalize=False).eval()
    assert encoder.mlp is None
    x = regions()["regions"]
    assert torch.allclose(encoder({"regions": x}), encoder.fc(x).mean(dim=1), atol=1e-6)


@pytest.mark.parametrize("kind, pool", [("gpo", GPO), ("mean", AvgPool), ("max", MaxPool)])
def test_pooling_option_selects_the_aggregator(kind, pool):
    assert isinstance(make_image_encoder(pooling=kind).pool, pool)
    assert isinstance(make_text_encoder(pooling=kind).pool, pool)


def test_region_drop_happens_only_in_training():
    encoder = make_image_encoder(pooling="mean", normalize=False)
    x = regions()
    full = encoder.eval()(x)
    encoder.train()
    encoder.mlp[1].eval()  # batch statistics frozen: only the drop can change the output
    torch.manual_seed(0)
    assert not torch.allclose(encoder(x), full)
    encoder.region_drop = 0.0
    assert torch.allclose(encoder(x), full, atol=1e-6)


def test_region_drop_keeps_at_least_one_region_in_training():
    encoder = make_image_encoder(region_drop=0.99).train()
    torch.manual_seed(0)
    out = encoder(regions(16))
    assert torch.isfinite(out).all()
    assert torch.allclose(out.norm(dim=-1), torch.ones(16), atol=1e-6)


def test_region_encoder_eval_output_is_deterministic():
    encoder = make_image_encoder().eval()
    assert torch.equal(encoder(regions()), encoder(regions()))


def test_batch_norm_statistics_ignore_padded_regions():
    encoder = make_image_encoder().train()
    x, lengths = regions()["regions"], torch.tensor([6, 3, 5, 2])
    real = VectorSets(x, lengths).mask()
    clean = x.masked_fill(~real[..., None], 0)
    noisy = torch.cat([x, torch.randn(4, 3, 8)], dim=1)  # more padding slots, holding garbage
    a = encoder.embed_regions(VectorSets(clean, lengths)).vectors
    b = encoder.embed_regions(VectorSets(noisy, lengths)).vectors
    assert torch.allclose(a, b[:, :6], atol=1e-6)
    assert (a[~real] == 0).all() and (b[:, 6:] == 0).all()


def test_region_encoder_rejects_a_vector_feature_and_an_unknown_one():
    with pytest.raises(UserError, match="region set"):
        RegionImageEncoder(make_ctx(), feature="pooled")
    with pytest.raises(UserError, match="offered: pooled, regions"):
        RegionImageEncoder(make_ctx(), feature="grid")


@pytest.mark.parametrize(
    ("kind", "name", "option", "value"),
    [("image-encoder", "vse-inf-region", "region_drop", 1.0), ("text-encoder", "vse-inf-bigru", "token_mask", 1.5)],
)
def test_option_ranges_are_checked_when_the_options_are_validated(kind, name, option, value):
    """The ranges are the factories' annotations (harness.options): the registry checks them
    when an experiment is planned, naming the key."""
    spec = PluginHost().registry.get(kind, name)
    with pytest.raises(UserError, match=f"^x.toml: methods.m.{option}: input should be less than"):
        spec.validate_options({option: value}, "x.toml: methods.m")


# -- BiGRU text ---------------------------------------------------------------------------------


def test_bigru_output_is_unit_norm_with_embed_dim():
    encoder = make_text_encoder().eval()
    out = encoder(encoder.prepare(CAPTIONS))
    assert out.shape == (3, 5)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-6)


def test_bigru_pools_the_per_step_average_of_both_directions():
    encoder = make_text_encoder(pooling="mean", normalize=False).eval()
    prepared = encoder.prepare(CAPTIONS)
    out = encoder(prepared)
    for row, (ids, length) in enumerate(zip(prepared["ids"], prepared["lengths"])):
        steps, _ = encoder.gru(encoder.embedding(ids[None, :length]))
        averaged = (steps[0, :, :5] + steps[0, :, 5:]) / 2
        assert torch.allclose(out[row], averaged.mean(dim=0), atol=1e-6)


def test_bigru_mask_token_has_its_own_embedding_row():
    encoder = make_text_encoder()
    assert encoder.mask_id == len(encoder.vocabulary)
    assert encoder.embedding.num_embeddings == len(encoder.vocabulary) + 1


def test_bigru_prepare_is_deterministic_and_matches_the_vocabulary():
    encoder = make_text_encoder().train()
    first, second = encoder.prepare(CAPTIONS), encoder.prepare(CAPTIONS)
    assert torch.equal(first["ids"], second["ids"])
    assert first["lengths"].tolist() == [8, 11, 4]  # <start> words <end>


def test_bigru_text_augmentation_happens_only_in_training():
    encoder = make_text_encoder(token_mask=0.5)
    prepared = encoder.prepare(CAPTIONS * 4)
    evaluated = encoder.eval()(prepared)
    assert torch.equal(evaluated, encoder(prepared))
    torch.manual_seed(0)
    assert not torch.allclose(encoder.train()(prepared), evaluated)
    encoder.token_mask = 0.0
    assert torch.allclose(encoder(prepared), evaluated, atol=1e-6)  # a GRU has no dropout


def test_bigru_augmentation_writes_the_mask_id_and_shortens_captions():
    encoder = make_text_encoder(token_mask=1.0).train()
    seen = []
    encoder.embedding.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    prepared = encoder.prepare(["two dogs play with a ball on the grass"] * 32)
    torch.manual_seed(0)
    encoder(prepared)
    ids = seen[0]
    assert (ids == encoder.mask_id).any()
    assert ids.shape[1] < prepared["ids"].shape[1]


# -- gradients ----------------------------------------------------------------------------------


def assert_every_trainable_parameter_has_a_finite_gradient(module):
    for name, param in module.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("pooling", ["gpo", "mean", "max"])
def test_a_gradient_step_through_the_region_encoder_is_finite_everywhere(pooling):
    encoder = make_image_encoder(pooling=pooling).train()
    torch.manual_seed(0)
    encoder(regions(8)).sum(dim=0).pow(2).sum().backward()
    assert_every_trainable_parameter_has_a_finite_gradient(encoder)


@pytest.mark.parametrize("pooling", ["gpo", "mean", "max"])
def test_a_gradient_step_through_the_bigru_encoder_is_finite_everywhere(pooling):
    encoder = make_text_encoder(pooling=pooling).train()
    torch.manual_seed(0)
    encoder(encoder.prepare(CAPTIONS * 3)).sum(dim=0).pow(2).sum().backward()
    assert_every_trainable_parameter_has_a_finite_gradient(encoder)

"""SCAN encoders: per-region and per-word unit vectors as VectorSets (docs/methods/scan.md)."""

from __future__ import annotations

import math

import pytest
import torch

from baselines.scan.encoders import SCANImageEncoder, SCANTextEncoder
from baselines.scan.heads import StackedCrossAttentionHead
from baselines.vse.losses import HardestNegativeTriplet
from harness.errors import UserError
from harness.interfaces import BuildContext

TRAIN_CAPTIONS = [
    "a dog runs on the grass",
    "a cat sleeps on a red sofa",
    "two dogs play with a ball on the grass",
    "a man rides a horse",
]
CAPTIONS = ["a dog", "two dogs play with a ball on the grass", "a man rides a red horse"]


def make_ctx(**shapes):
    return BuildContext(
        image_feature_shapes=shapes or {"regions": (4, 8), "pooled": (8,)},
        train_captions=TRAIN_CAPTIONS,
        frozen_text=object(),
    )


def make_text_encoder(**options):
    torch.manual_seed(0)
    return SCANTextEncoder(make_ctx(), **{"word_dim": 6, "embed_dim": 5, "min_count": 1, **options}).eval()


def test_image_encoder_returns_one_unit_vector_per_region_with_all_regions_counted():
    encoder = SCANImageEncoder(make_ctx(), embed_dim=16)
    out = encoder({"regions": torch.randn(3, 4, 8)})
    assert out.vectors.shape == (3, 4, 16)
    assert out.lengths.tolist() == [4, 4, 4]
    torch.testing.assert_close(out.vectors.norm(dim=-1), torch.ones(3, 4))


def test_image_encoder_projects_each_region_on_its_own():
    encoder = SCANImageEncoder(make_ctx(), embed_dim=16, normalize=False)
    regions = torch.randn(2, 4, 8)
    out = encoder({"regions": regions})
    torch.testing.assert_close(out.vectors[1, 2], encoder.fc(regions[1, 2]))


def test_image_encoder_weights_within_xavier_bound_and_bias_zero():
    torch.manual_seed(0)
    encoder = SCANImageEncoder(make_ctx(regions=(36, 300)), embed_dim=200)
    bound = math.sqrt(6) / math.sqrt(300 + 200)
    assert 0.95 * bound < encoder.fc.weight.abs().max() <= bound
    assert torch.equal(encoder.fc.bias, torch.zeros(200))


def test_image_encoder_rejects_a_feature_that_is_not_a_region_set():
    with pytest.raises(UserError, match="region set"):
        SCANImageEncoder(make_ctx(), feature="pooled")


def test_image_encoder_missing_feature_raises_user_error_listing_offered():
    with pytest.raises(UserError, match=r"'grid'.*pooled, regions"):
        SCANImageEncoder(make_ctx(), feature="grid")


def test_text_encoder_returns_one_unit_vector_per_word_including_start_and_end():
    encoder = make_text_encoder()
    out = encoder(encoder.prepare(CAPTIONS))
    assert out.lengths.tolist() == [4, 11, 8]  # words + <start> + <end>
    assert out.vectors.shape == (3, 11, 5)
    norms = out.vectors.norm(dim=-1)
    torch.testing.assert_close(norms[out.mask()], torch.ones(4 + 11 + 8))
    assert torch.equal(norms[~out.mask()], torch.zeros(3 * 11 - (4 + 11 + 8)))


def test_text_encoder_averages_the_two_directions_at_every_word():
    encoder = make_text_encoder()
    prepared = encoder.prepare(CAPTIONS)
    out = encoder(prepared)
    for row, (ids, length) in enumerate(zip(prepared["ids"], prepared["lengths"])):
        outputs, _ = encoder.gru(encoder.embedding(ids[None, :length]))
        averaged = (outputs[0, :, :5] + outputs[0, :, 5:]) / 2
        torch.testing.assert_close(out.vectors[row, :length], torch.nn.functional.normalize(averaged, dim=-1))


def test_text_encoder_unidirectional_keeps_every_step():
    encoder = make_text_encoder(bidirectional=False)
    prepared = encoder.prepare(CAPTIONS[1:2])
    outputs, _ = encoder.gru(encoder.embedding(prepared["ids"]))
    torch.testing.assert_close(encoder(prepared).vectors[0], torch.nn.functional.normalize(outputs[0], dim=-1))


def test_text_encoder_word_vectors_do_not_depend_on_batch_order_or_padding():
    encoder = make_text_encoder()
    prepared = encoder.prepare(CAPTIONS)
    out = encoder(prepared)
    order = torch.tensor([2, 0, 1])
    padded_ids = torch.nn.functional.pad(prepared["ids"][order], (0, 6))
    shuffled = encoder({"ids": padded_ids, "lengths": prepared["lengths"][order]})
    assert shuffled.vectors.shape[1] == out.vectors.shape[1]  # padding past the longest is trimmed
    torch.testing.assert_close(shuffled.vectors, out.vectors[order])


def test_text_encoder_vocabulary_is_built_from_the_training_captions():
    encoder = make_text_encoder(min_count=2)
    assert "grass" in encoder.vocabulary
    assert "horse" not in encoder.vocabulary


@pytest.mark.parametrize("direction, aggregation", [("t2i", "avg"), ("t2i", "lse"), ("i2t", "avg"), ("i2t", "lse")])
def test_gradients_reach_both_encoders_finite_through_the_head(direction, aggregation):
    torch.manual_seed(0)
    image_encoder = SCANImageEncoder(make_ctx(), embed_dim=5)
    text_encoder = make_text_encoder().train()
    head = StackedCrossAttentionHead(None, direction=direction, aggregation=aggregation)
    scores = head(image_encoder({"regions": torch.randn(3, 4, 8)}), text_encoder(text_encoder.prepare(CAPTIONS)))
    HardestNegativeTriplet(None, margin=0.2)(scores, torch.arange(3)).backward()
    for name, param in [*image_encoder.named_parameters(), *text_encoder.named_parameters()]:
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name

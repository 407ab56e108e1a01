"""VSE++ encoders: linear image head and GRU caption encoder (docs/methods/vse-pp.md)."""

import math

import pytest
import torch

from baselines.vse.encoders import GRUTextEncoder, LinearImageEncoder, l2_normalize
from harness.errors import UserError
from harness.interfaces import BuildContext

TRAIN_CAPTIONS = [
    "a dog runs on the grass",
    "a cat sleeps on a red sofa",
    "two dogs play with a ball on the grass",
    "a man rides a horse",
]


class StubFrozenText:
    def encode_texts(self, texts):
        raise AssertionError("the VSE++ encoders do not use the frozen text backbone")


def make_ctx(**shapes):
    return BuildContext(
        image_feature_shapes=shapes or {"pooled": (8,), "regions": (4, 8)},
        train_captions=TRAIN_CAPTIONS,
        frozen_text=StubFrozenText(),
    )


def make_text_encoder(**options):
    torch.manual_seed(0)
    options = {"word_dim": 6, "embed_dim": 5, "min_count": 1, **options}
    return GRUTextEncoder(make_ctx(), **options).eval()


def test_l2_normalize_gives_unit_rows():
    x = torch.tensor([[3.0, 4.0], [0.5, 0.0]])
    assert torch.allclose(l2_normalize(x).norm(dim=-1), torch.ones(2))


def test_l2_normalize_keeps_a_zero_vector_finite():
    assert torch.equal(l2_normalize(torch.zeros(1, 3)), torch.zeros(1, 3))


def test_linear_image_encoder_weights_within_xavier_bound_and_bias_zero():
    torch.manual_seed(0)
    encoder = LinearImageEncoder(make_ctx(pooled=(300,)), embed_dim=200)
    bound = math.sqrt(6) / math.sqrt(300 + 200)
    weight = encoder.fc.weight
    assert weight.abs().max() <= bound
    assert weight.abs().max() > 0.95 * bound  # uniform over the whole range, not a narrower init
    assert torch.equal(encoder.fc.bias, torch.zeros(200))


def test_linear_image_encoder_output_is_unit_norm_with_embed_dim():
    encoder = LinearImageEncoder(make_ctx(), embed_dim=16)
    out = encoder({"pooled": torch.randn(3, 8)})
    assert out.shape == (3, 16)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-6)


def test_linear_image_encoder_without_normalize_returns_the_raw_projection():
    encoder = LinearImageEncoder(make_ctx(), embed_dim=16, normalize=False)
    features = torch.randn(3, 8)
    assert torch.allclose(encoder({"pooled": features}), encoder.fc(features))


def test_linear_image_encoder_reads_only_its_feature():
    encoder = LinearImageEncoder(make_ctx(), feature="pooled", embed_dim=16)
    features = torch.randn(3, 8)
    alone = encoder({"pooled": features})
    with_others = encoder({"pooled": features, "regions": torch.randn(3, 4, 8)})
    assert torch.equal(alone, with_others)


def test_linear_image_encoder_averages_regions():
    encoder = LinearImageEncoder(make_ctx(), feature="regions", embed_dim=16)
    regions = torch.randn(3, 4, 8)
    expected = l2_normalize(encoder.fc(regions.mean(dim=1)))
    assert torch.allclose(encoder({"regions": regions}), expected, atol=1e-6)


def test_linear_image_encoder_l2_normalize_input_ignores_feature_scale():
    encoder = LinearImageEncoder(make_ctx(), embed_dim=16, l2_normalize_input=True, normalize=False)
    features = torch.randn(3, 8)
    scaled = encoder({"pooled": 10 * features})
    assert torch.allclose(encoder({"pooled": features}), scaled, atol=1e-6)


def test_linear_image_encoder_missing_feature_raises_user_error_listing_offered():
    with pytest.raises(UserError, match=r"'logits'.*pooled, regions"):
        LinearImageEncoder(make_ctx(), feature="logits")


def test_linear_image_encoder_rejects_a_feature_that_is_neither_vector_nor_region_set():
    with pytest.raises(UserError, match="per-item shape"):
        LinearImageEncoder(make_ctx(grid=(7, 7, 8)), feature="grid")


def test_gru_vocabulary_is_built_from_the_training_captions():
    encoder = make_text_encoder()
    assert "horse" in encoder.vocabulary
    assert "giraffe" not in encoder.vocabulary


def test_gru_min_count_option_reaches_the_vocabulary():
    encoder = make_text_encoder(min_count=2)
    assert "grass" in encoder.vocabulary  # seen twice
    assert "horse" not in encoder.vocabulary  # seen once


def test_gru_word_embeddings_are_uniform_within_0_1():
    weight = make_text_encoder(word_dim=300).embedding.weight
    assert weight.abs().max() <= 0.1
    assert weight.abs().max() > 0.09


def test_gru_prepare_returns_ids_and_lengths_caption_axis_first():
    encoder = make_text_encoder()
    prepared = encoder.prepare(["a dog", "a red ball on the grass"])
    assert set(prepared) == {"ids", "lengths"}
    assert prepared["ids"].dtype == prepared["lengths"].dtype == torch.int64
    assert prepared["ids"].shape == (2, 8)
    assert prepared["lengths"].tolist() == [4, 8]


def test_gru_output_is_unit_norm_with_embed_dim():
    encoder = make_text_encoder()
    out = encoder(encoder.prepare(["a dog", "a cat sleeps on the grass", "a horse"]))
    assert out.shape == (3, 5)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-6)


def test_gru_embedding_is_independent_of_padding_length():
    encoder = make_text_encoder()
    prepared = encoder.prepare(["a dog runs"])
    ids, lengths = prepared["ids"], prepared["lengths"]
    padded_to_5 = torch.nn.functional.pad(ids, (0, 5 - ids.shape[1]))
    padded_to_12 = torch.nn.functional.pad(ids, (0, 12 - ids.shape[1]))
    short = encoder({"ids": padded_to_5, "lengths": lengths})
    long = encoder({"ids": padded_to_12, "lengths": lengths})
    assert torch.allclose(short, long, atol=1e-6)


def test_gru_embedding_is_independent_of_batch_order():
    encoder = make_text_encoder()
    prepared = encoder.prepare(["a dog", "two dogs play with a ball on the grass", "a man rides"])
    out = encoder(prepared)
    order = torch.tensor([1, 2, 0])
    shuffled = encoder({name: tensor[order] for name, tensor in prepared.items()})
    assert torch.allclose(shuffled, out[order], atol=1e-6)


def test_gru_unidirectional_embedding_is_the_output_at_the_last_valid_step():
    encoder = make_text_encoder(normalize=False)
    prepared = encoder.prepare(["a dog", "a cat sleeps on a red sofa"])
    out = encoder(prepared)
    for row, (ids, length) in enumerate(zip(prepared["ids"], prepared["lengths"])):
        outputs, _ = encoder.gru(encoder.embedding(ids[None, :length]))
        assert torch.allclose(out[row], outputs[0, length - 1], atol=1e-6)


def test_gru_bidirectional_embedding_averages_forward_last_and_backward_first_outputs():
    encoder = make_text_encoder(bidirectional=True, normalize=False)
    prepared = encoder.prepare(["a dog", "a cat sleeps on a red sofa"])
    out = encoder(prepared)
    assert out.shape == (2, 5)
    for row, (ids, length) in enumerate(zip(prepared["ids"], prepared["lengths"])):
        outputs, _ = encoder.gru(encoder.embedding(ids[None, :length]))
        forward, backward = outputs[0, :, :5], outputs[0, :, 5:]
        assert torch.allclose(out[row], (forward[length - 1] + backward[0]) / 2, atol=1e-6)


def test_gru_embedding_uses_the_top_layer_of_a_stacked_gru():
    encoder = make_text_encoder(num_layers=2, normalize=False)
    prepared = encoder.prepare(["a dog runs on the grass"])
    outputs, _ = encoder.gru(encoder.embedding(prepared["ids"]))
    assert torch.allclose(encoder(prepared)[0], outputs[0, -1], atol=1e-6)

"""`d2s-text` (docs/methods/d2s-vse.md) on the real MiniLM, built through the real registry."""

from __future__ import annotations

import pytest
import torch

from baselines.vse.encoders import l2_normalize
from harness.errors import UserError
from harness.interfaces import BuildContext
from harness.plugin_manager import PluginHost
from harness.training.model import prepare_texts

CTX = BuildContext(image_feature_shapes={}, train_captions=(), frozen_text=None)
CAPTIONS = ["a dog runs on the grass", "two cats sleep"]
DENSE = ["A brown dog runs across a wide green lawn under a cloudy sky. " * 8, "Two cats sleep on a sofa."]


@pytest.fixture(scope="module")
def build():
    spec = PluginHost().registry.get("text-encoder", "d2s-text")

    def build(**options):
        torch.manual_seed(0)
        return spec.build({"embed_dim": 32, "num_tokens": 3, "decoder_depth": 1, **options}, "test", CTX)

    return build


@pytest.fixture(scope="module")
def shared(build):
    """One encoder for the tests below (a MiniLM load is the slow part)."""
    return build()


@pytest.fixture
def encoder(shared):
    shared.eval()
    yield shared
    shared.eval()
    shared.normalize_decoder_at_eval = False
    shared.zero_grad(set_to_none=True)


def sentence(encoder, inputs) -> torch.Tensor:
    """t = LN(GPO(W)) from the encoder's own parts."""
    words = encoder.token_features(inputs)
    return encoder.norm(encoder.pool(words.vectors, words.lengths))


def test_prepare_marks_captions_sparse_and_other_sources_dense(encoder):
    assert prepare_texts(encoder, CAPTIONS, "captions")["sparse"].tolist() == [True, True]
    assert prepare_texts(encoder, DENSE, "dense")["sparse"].tolist() == [False, False]


def test_dense_text_is_truncated_at_its_own_length(encoder):
    assert encoder.prepare(DENSE)["input_ids"].shape[1] == encoder.max_length == 64
    assert encoder.prepare(DENSE, source="dense")["lengths"][0] > 64


@torch.inference_mode()
def test_a_caption_embedding_is_the_sentence_plus_the_decoder_output(encoder):
    inputs = encoder.prepare(CAPTIONS)
    words = encoder.token_features(inputs)
    residual = encoder.decoder(words.vectors, words.lengths)
    assert residual.shape == (2, 32)
    expected = l2_normalize(sentence(encoder, inputs) + residual)
    torch.testing.assert_close(encoder(inputs), expected)
    assert not torch.allclose(encoder(inputs), l2_normalize(sentence(encoder, inputs)), atol=1e-3)


@torch.inference_mode()
def test_dense_text_skips_the_decoder(encoder):
    inputs = encoder.prepare(DENSE, source="dense")
    torch.testing.assert_close(encoder(inputs), l2_normalize(sentence(encoder, inputs)))


@torch.inference_mode()
def test_the_codes_eval_normalisation_of_the_decoder_output_is_an_option(encoder):
    inputs = encoder.prepare(CAPTIONS)
    words = encoder.token_features(inputs)
    residual = encoder.decoder(words.vectors, words.lengths)
    encoder.normalize_decoder_at_eval = True
    torch.testing.assert_close(encoder(inputs), l2_normalize(sentence(encoder, inputs) + l2_normalize(residual)))


def test_the_decoder_trains_through_caption_embeddings_only(encoder):
    encoder.train()
    encoder(encoder.prepare(DENSE, source="dense")).sum().backward()
    assert encoder.decoder.tokens.grad is None and encoder.fc.weight.grad is not None
    encoder(encoder.prepare(CAPTIONS)).sum().backward()
    assert encoder.decoder.tokens.grad is not None and encoder.decoder.tokens.grad.abs().sum() > 0


@torch.inference_mode()
def test_decoder_init_defaults_to_the_codes_and_xavier_is_an_option(shared, build):
    """`decoder_init`: "code" (timm Block, nn.Linear defaults: non-zero qkv biases) by default."""
    assert shared.decoder.blocks[0].self_attn.in_proj_bias.abs().max() > 0
    xavier = build(decoder_init="xavier")
    assert torch.equal(xavier.decoder.blocks[0].self_attn.in_proj_bias, torch.zeros(3 * 32))


def test_without_tokens_there_is_no_decoder(build):
    encoder = build(num_tokens=0).eval()
    inputs = encoder.prepare(CAPTIONS)
    assert encoder.decoder is None
    torch.testing.assert_close(encoder(inputs), l2_normalize(sentence(encoder, inputs)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"decoder_heads": 5}, r"decoder_heads \(5\) must divide embed_dim \(32\)"),
        ({"dense_max_length": 1000}, r"dense_max_length must be in \[2, 512\]"),
    ],
)
def test_impossible_options_are_refused(build, options, message):
    with pytest.raises(UserError, match=message):
        build(**options)

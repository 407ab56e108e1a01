"""The learnable-token decoder of D2S-VSE (docs/methods/d2s-vse.md) on small synthetic word features."""

from __future__ import annotations

import math

import pytest
import torch

from plugins.d2s_vse.decoder import LearnableTokenDecoder

DIM = 16


@pytest.fixture
def decoder():
    torch.manual_seed(0)
    return LearnableTokenDecoder(DIM, num_tokens=6, depth=2, heads=4).eval()


def words(batch: int, width: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, width, DIM, generator=torch.Generator().manual_seed(seed))


def test_output_is_one_vector_per_caption_from_learnable_tokens(decoder):
    out = decoder(words(3, 5), torch.tensor([5, 2, 4]))
    assert out.shape == (3, DIM)
    assert decoder.tokens.shape == (6, DIM) and decoder.tokens.requires_grad


def test_output_is_the_mean_of_the_normalised_token_outputs(decoder):
    w, lengths = words(2, 4), torch.tensor([4, 4])
    sequence = torch.cat([w, decoder.tokens.expand(2, -1, -1)], dim=1)
    for block in decoder.blocks:
        sequence = block(sequence)
    expected = decoder.norm(sequence[:, 4:]).mean(dim=1)
    torch.testing.assert_close(decoder(w, lengths), expected, rtol=1e-5, atol=1e-5)


def test_padded_words_do_not_reach_the_output(decoder):
    w, lengths = words(2, 5), torch.tensor([3, 5])
    changed = w.clone()
    changed[0, 3:] = 100.0
    torch.testing.assert_close(decoder(w, lengths), decoder(changed, lengths))


def test_a_captions_output_does_not_depend_on_the_batch_it_is_padded_in(decoder):
    alone = decoder(words(1, 3), torch.tensor([3]))
    padded = torch.cat([words(1, 3), torch.zeros(1, 4, DIM)], dim=1)
    in_batch = decoder(torch.cat([padded, words(1, 7, seed=2)]), torch.tensor([3, 7]))[:1]
    torch.testing.assert_close(alone, in_batch, rtol=1e-5, atol=1e-5)


def test_word_order_does_not_change_the_output_so_token_layouts_are_equivalent(decoder):
    """No positional embeddings: prefix, postfix and surround layouts give the same tokens."""
    w = words(1, 5)
    shuffled = w[:, torch.tensor([4, 2, 0, 3, 1])]
    torch.testing.assert_close(decoder(w, torch.tensor([5])), decoder(shuffled, torch.tensor([5])), rtol=1e-5, atol=1e-5)


def test_different_words_give_different_outputs(decoder):
    lengths = torch.tensor([4])
    assert not torch.allclose(decoder(words(1, 4, seed=1), lengths), decoder(words(1, 4, seed=2), lengths))


def test_heads_must_divide_the_feature_size():
    with pytest.raises(ValueError, match="3 heads do not divide the feature size 16"):
        LearnableTokenDecoder(DIM, num_tokens=2, depth=1, heads=3)


def attention_biases(decoder: LearnableTokenDecoder) -> list[torch.Tensor]:
    """Every block's qkv in-projection and output-projection biases."""
    return [b for block in decoder.blocks for b in (block.self_attn.in_proj_bias, block.self_attn.out_proj.bias)]


def test_code_init_is_the_nn_linear_default_of_a_timm_block():
    """The public code's timm Blocks are never re-initialised: qkv / proj biases U(±1/√D), weights
    kaiming-uniform a = √5 (bound 1/√fan_in), LayerNorms 1 and 0."""
    torch.manual_seed(0)
    decoder = LearnableTokenDecoder(DIM, num_tokens=2, depth=2, heads=4)  # init="code" by default
    bound = 1 / math.sqrt(DIM)
    for bias in attention_biases(decoder):
        assert bias.abs().max() <= bound and bias.abs().max() > 0
        assert bias.abs().max() > bound / 4  # drawn over the whole range, not a tiny jitter
    for block in decoder.blocks:
        for weight, fan_in in (
            (block.self_attn.in_proj_weight, DIM),
            (block.self_attn.out_proj.weight, DIM),
            (block.linear1.weight, DIM),
            (block.linear2.weight, block.linear2.in_features),
        ):
            assert weight.abs().max() <= 1 / math.sqrt(fan_in)
        assert block.linear1.bias.abs().max() <= bound and block.linear1.bias.abs().max() > 0
        for norm in (block.norm1, block.norm2):
            assert torch.equal(norm.weight, torch.ones(DIM)) and torch.equal(norm.bias, torch.zeros(DIM))


def test_xavier_init_keeps_pytorchs_attention_default_with_zero_biases():
    torch.manual_seed(0)
    decoder = LearnableTokenDecoder(DIM, num_tokens=2, depth=2, heads=4, init="xavier")
    for bias in attention_biases(decoder):
        assert torch.equal(bias, torch.zeros_like(bias))
    xavier_bound = math.sqrt(6 / (DIM + 3 * DIM))  # xavier_uniform_ on the [3D, D] in-projection
    weight = decoder.blocks[0].self_attn.in_proj_weight
    assert weight.abs().max() <= xavier_bound and weight.abs().max() > 1 / math.sqrt(DIM)


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="unknown decoder init 'normal'"):
        LearnableTokenDecoder(DIM, num_tokens=2, depth=1, heads=4, init="normal")

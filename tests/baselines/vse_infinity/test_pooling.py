"""Set pooling of VSE∞: GPO and the fixed mean / max aggregators (VSE∞ paper §3.2–3.3)."""

import math

import pytest
import torch

from baselines.vse_infinity.pooling import GPO, AvgPool, MaxPool, make_pooling, positional_encoding
from harness.errors import UserError

KINDS = ["gpo", "mean", "max"]


def make_gpo() -> GPO:
    torch.manual_seed(0)
    return GPO()


def test_positional_encoding_is_the_transformer_sinusoid_of_0_based_positions():
    table = positional_encoding(5, 32)
    assert table.shape == (5, 32)
    assert torch.equal(table[0, 0::2], torch.zeros(16))  # sin(0)
    assert torch.equal(table[0, 1::2], torch.ones(16))  # cos(0)
    k, j = 3, 4
    angle = k * 10000 ** (-2 * j / 32)
    assert table[k, 2 * j].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[k, 2 * j + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_positional_encoding_tables_are_cached_per_length():
    assert positional_encoding(7, 32) is positional_encoding(7, 32)
    assert positional_encoding(7, 32) is not positional_encoding(8, 32)


def test_gpo_weights_sum_to_one_over_each_sets_real_positions():
    weights = make_gpo().pool_weights(torch.tensor([1, 4, 9]))
    assert weights.shape == (3, 9)
    assert torch.allclose(weights.sum(dim=1), torch.ones(3))
    assert (weights[0, 1:] == 0).all() and (weights[1, 4:] == 0).all()


def test_gpo_weights_of_a_set_depend_only_on_its_size():
    gpo = make_gpo()
    mixed = gpo.pool_weights(torch.tensor([3, 6, 3, 2]))
    alone = gpo.pool_weights(torch.tensor([3]))
    assert torch.equal(mixed[0], mixed[2])
    assert torch.allclose(mixed[0, :3], alone[0], atol=1e-6)


def test_gpo_output_is_the_weighted_sum_of_per_channel_sorted_values():
    # Channel c holds c + 1 ones and zeros elsewhere, so its output is θ_0 + ... + θ_c.
    gpo = make_gpo()
    n = 5
    steps = (torch.arange(n)[:, None] <= torch.arange(n)[None, :]).float()  # [set element, channel]
    shuffled = steps[torch.tensor([3, 0, 4, 1, 2])]
    out = gpo(shuffled[None], torch.tensor([n]))
    expected = gpo.pool_weights(torch.tensor([n]))[0].cumsum(dim=0)
    assert torch.allclose(out[0], expected, atol=1e-6)


def test_gpo_weights_do_not_depend_on_feature_values():
    # Fixed weights make GPO positively homogeneous: scaling the set scales the output.
    gpo = make_gpo()
    vectors, lengths = torch.randn(2, 6, 4), torch.tensor([6, 4])
    assert torch.allclose(gpo(7.5 * vectors, lengths), 7.5 * gpo(vectors, lengths), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_pooling_is_invariant_to_the_order_of_the_set(kind):
    torch.manual_seed(0)
    pool = make_pooling(kind)
    vectors = torch.randn(1, 7, 5)
    permuted = vectors[:, torch.randperm(7)]
    lengths = torch.tensor([7])
    assert torch.allclose(pool(vectors, lengths), pool(permuted, lengths), atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_padded_positions_never_affect_the_output(kind):
    torch.manual_seed(0)
    pool = make_pooling(kind)
    vectors, lengths = torch.randn(2, 6, 4), torch.tensor([3, 6])
    garbage = vectors.clone()
    garbage[0, 3:] = torch.tensor([1e6, -1e6, float("nan"), 5.0])
    trimmed = pool(vectors[:1, :3], lengths[:1])
    assert torch.equal(pool(garbage, lengths), pool(vectors, lengths))
    assert torch.allclose(pool(garbage, lengths)[0], trimmed[0], atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_pooling_a_single_vector_returns_it(kind):
    torch.manual_seed(0)
    vector = torch.randn(1, 1, 8)
    assert torch.allclose(make_pooling(kind)(vector, torch.tensor([1])), vector[:, 0], atol=1e-6)


def test_mean_pool_averages_only_the_real_vectors():
    vectors = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]]])
    assert torch.allclose(AvgPool()(vectors, torch.tensor([2])), torch.tensor([[2.0, 4.0]]))


def test_max_pool_takes_the_channel_max_over_the_real_vectors_only():
    vectors = torch.tensor([[[-1.0, -5.0], [-3.0, -2.0], [0.0, 0.0]]])
    assert torch.equal(MaxPool()(vectors, torch.tensor([2])), torch.tensor([[-1.0, -2.0]]))


def test_gpo_gradients_reach_its_gru_and_score_layer_and_are_finite():
    gpo = make_gpo()
    vectors = torch.randn(3, 5, 4, requires_grad=True)
    gpo(vectors, torch.tensor([5, 2, 3])).pow(2).sum().backward()
    for name, param in gpo.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert torch.equal(vectors.grad[1, 2:], torch.zeros(3, 4))  # padding gets no gradient


def test_unknown_pooling_kind_is_a_user_error():
    with pytest.raises(UserError, match="gpo, mean, max"):
        make_pooling("avg")

"""`ascl-infonce` on hand-computed toy batches (docs/methods/ascl.md, loss)."""

from __future__ import annotations

import math

import torch

from plugins.ascl.losses import AsCLInfoNCE, generated_negative_guard

IMAGE_IDS = torch.tensor([0, 1])
REAL = [[0.5, 0.2], [0.1, 0.4]]  # positives on the diagonal


def softplus_sum(*gaps: float) -> float:
    """−log softmax of a positive whose logit exceeds the others' by `gaps`: log(1 + Σ e^−gap)."""
    return math.log(1 + sum(math.exp(-gap) for gap in gaps))


def test_loss_on_real_captions_is_i2t_plus_t2i_cross_entropy():
    loss = AsCLInfoNCE(None, temperature=0.1)(torch.tensor(REAL), IMAGE_IDS)
    # logits S/τ: rows [5, 2], [1, 4]; columns [5, 1], [2, 4]
    i2t = (softplus_sum(3) + softplus_sum(3)) / 2
    t2i = (softplus_sum(4) + softplus_sum(2)) / 2
    assert math.isclose(loss.item(), i2t + t2i, rel_tol=1e-6)


def test_generated_columns_enter_i2t_only_and_the_guard_sets_higher_ones_to_zero():
    # generated columns (negatives of captions 0 and 1); 0.6 > S_00 = 0.5 is guarded to 0
    scores = torch.tensor([[0.5, 0.2, 0.6, 0.3], [0.1, 0.4, 0.0, 0.2]])
    loss = AsCLInfoNCE(None, temperature=0.1)(scores, IMAGE_IDS)
    # row 0 logits [5, 2, 0 (guarded, still in the denominator), 3]; row 1 [1, 4, 0, 2]
    i2t = (softplus_sum(3, 5, 2) + softplus_sum(3, 4, 2)) / 2
    t2i = (softplus_sum(4) + softplus_sum(2)) / 2  # real captions over the two images only
    assert math.isclose(loss.item(), i2t + t2i, rel_tol=1e-6)


def test_guard_zeroes_exactly_the_generated_entries_above_the_positive():
    scores = torch.tensor([[0.5, 0.9, 0.6, 0.5], [0.1, 0.4, 0.7, -0.2]])
    guarded = generated_negative_guard(scores)
    # real columns untouched (0.9 stays), ties kept (0.5 is not > 0.5), negatives kept
    assert torch.equal(guarded, torch.tensor([[0.5, 0.9, 0.0, 0.5], [0.1, 0.4, 0.0, -0.2]]))

"""VSE hinge triplet loss, VSE0 (sum) and VSE++ (hardest negative) (the VSE++ paper's SH and MH losses)."""

import pytest
import torch

from baselines.vse.losses import (
    HardestNegativeTriplet,
    SumHingeTriplet,
    hinge_triplet_loss,
    same_image_pairs,
)
from harness.interfaces import BuildContext

# Hinges with margin 0.2 (rows: image anchors, columns: caption anchors):
#   rows  c_s:  i=0 -> j1 0.05, j2 0.3 | i=1 -> none | i=2 -> j0 0.1, j1 0.4
#   cols  c_im: j=0 -> none | j=1 -> i2 0.1 | j=2 -> i0 0.5
# sum = (0.05 + 0.3 + 0.1 + 0.4) + (0.1 + 0.5) = 1.45; hardest = (0.3 + 0.4) + (0.1 + 0.5) = 1.3
# No hinge argument is exactly 0, so rounding cannot flip a satisfied pair into a violation.
TOY_SCORES = torch.tensor(
    [[0.5, 0.35, 0.6],
     [0.25, 0.6, 0.05],
     [0.2, 0.5, 0.3]],
    dtype=torch.float64,
)


def make_ctx():
    return BuildContext(image_feature_shapes={}, train_captions=[], frozen_text=object())


def test_sum_hinge_matches_hand_computed_value():
    loss = hinge_triplet_loss(TOY_SCORES, margin=0.2, hardest=False)
    assert loss.item() == pytest.approx(1.45)


def test_hardest_negative_matches_hand_computed_value():
    loss = hinge_triplet_loss(TOY_SCORES, margin=0.2, hardest=True)
    assert loss.item() == pytest.approx(1.3)


def test_hardest_negative_is_at_most_sum_hinge():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        scores = torch.rand(6, 6, generator=generator)
        hardest = hinge_triplet_loss(scores, margin=0.2, hardest=True)
        summed = hinge_triplet_loss(scores, margin=0.2, hardest=False)
        assert hardest <= summed + 1e-6


def test_loss_is_summed_over_the_batch_not_averaged():
    batch = 4
    eye = torch.eye(batch, dtype=torch.float64)
    scores = 0.8 * eye + 0.7 * (1 - eye)  # every negative violates by 0.2 + 0.7 - 0.8 = 0.1
    summed = hinge_triplet_loss(scores, margin=0.2, hardest=False)
    hardest = hinge_triplet_loss(scores, margin=0.2, hardest=True)
    assert summed.item() == pytest.approx(2 * batch * (batch - 1) * 0.1)
    assert hardest.item() == pytest.approx(2 * batch * 0.1)


def test_well_separated_scores_give_zero_loss():
    scores = torch.eye(4) * 0.9 + (1 - torch.eye(4)) * 0.1  # every negative 0.8 below its positive
    assert hinge_triplet_loss(scores, margin=0.2, hardest=True).item() == 0
    assert hinge_triplet_loss(scores, margin=0.2, hardest=False).item() == 0


def test_diagonal_is_never_a_negative():
    scores = torch.zeros(3, 3)  # every hinge equals the margin, including the diagonal's
    loss = hinge_triplet_loss(scores, margin=0.2, hardest=False)
    assert loss.item() == pytest.approx(2 * 3 * 2 * 0.2)  # 2 directions x 3 anchors x 2 negatives


def test_same_image_mask_removes_the_same_image_negative():
    scores = torch.tensor([[0.5, 0.6], [0.6, 0.5]])  # the only violations are between pairs 0 and 1
    mask = torch.tensor([[False, True], [True, False]])
    for hardest in (True, False):
        assert hinge_triplet_loss(scores, 0.2, hardest).item() == pytest.approx(4 * 0.3)
        assert hinge_triplet_loss(scores, 0.2, hardest, same_image_mask=mask).item() == 0


def test_same_image_mask_keeps_the_other_negatives():
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[0, 1] = mask[1, 0] = True  # removes only the 0.05 hinge of row 0, column 1
    loss = hinge_triplet_loss(TOY_SCORES, margin=0.2, hardest=False, same_image_mask=mask)
    assert loss.item() == pytest.approx(1.4)


def test_gradient_step_raises_positives_and_lowers_violating_negatives():
    for hardest in (True, False):
        scores = TOY_SCORES.clone().requires_grad_(True)
        hinge_triplet_loss(scores, margin=0.2, hardest=hardest).backward()
        grad = scores.grad
        assert torch.isfinite(grad).all()
        stepped = TOY_SCORES - 0.01 * grad
        assert (stepped.diagonal() >= TOY_SCORES.diagonal()).all()
        assert stepped[0, 2] < TOY_SCORES[0, 2]  # hardest violation of row 0 and of column 2
        assert stepped[2, 1] < TOY_SCORES[2, 1]  # hardest violation of row 2 and of column 1
        assert grad[1, 2] == 0  # satisfied in both directions


def test_hardest_negative_ignores_the_softer_violations():
    scores = TOY_SCORES.clone().requires_grad_(True)
    hinge_triplet_loss(scores, margin=0.2, hardest=True).backward()
    assert scores.grad[0, 1] == 0  # violates row 0 by 0.05, but row 0's hardest is column 2


def test_non_square_scores_raise_value_error():
    with pytest.raises(ValueError, match="square"):
        hinge_triplet_loss(torch.zeros(2, 3), margin=0.2, hardest=True)


def test_same_image_pairs_marks_shared_images_off_the_diagonal():
    pairs = same_image_pairs(torch.tensor([7, 3, 7]))
    expected = torch.tensor([[False, False, True], [False, False, False], [True, False, False]])
    assert torch.equal(pairs, expected)


def test_loss_components_default_to_margin_0_2_and_no_masking():
    image_ids = torch.tensor([0, 1, 2])
    hardest = HardestNegativeTriplet(make_ctx())
    summed = SumHingeTriplet(make_ctx())
    assert hardest(TOY_SCORES, image_ids).item() == pytest.approx(1.3)
    assert summed(TOY_SCORES, image_ids).item() == pytest.approx(1.45)


def test_loss_components_treat_same_image_captions_as_negatives_by_default():
    scores = torch.tensor([[0.5, 0.6], [0.6, 0.5]])
    same_image = torch.tensor([4, 4])
    assert HardestNegativeTriplet(make_ctx())(scores, same_image).item() == pytest.approx(4 * 0.3)


def test_loss_components_mask_same_image_when_asked():
    scores = torch.tensor([[0.5, 0.6], [0.6, 0.5]])
    same_image = torch.tensor([4, 4])
    for component in (HardestNegativeTriplet, SumHingeTriplet):
        loss = component(make_ctx(), mask_same_image=True)(scores, same_image)
        assert loss.item() == 0

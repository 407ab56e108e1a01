"""`d2s-triplet` and `d2s-distill` (docs/methods/d2s-vse.md, losses) on small synthetic batches."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.plugin_manager import PluginHost
from harness.training.batch import TrainingBatch
from plugins.d2s_vse.losses import distillation_loss

SCORES = torch.tensor([[0.9, 0.5, 0.6], [0.8, 0.7, 0.2], [0.35, 0.3, 0.4]])
DISTINCT = torch.tensor([0, 1, 2])
# Hinges [α − S_ii + S_ij]_+ with α = 0.2, by anchor (zeros left out):
#   image rows:      row 1: col 0 → 0.3;   row 2: col 0 → 0.15, col 1 → 0.1
#   caption columns: col 0: row 1 → 0.1;   col 2: row 0 → 0.4
HARDEST = 0.3 + 0.15 + 0.1 + 0.4
SUM_HINGE = 0.3 + 0.15 + 0.1 + 0.1 + 0.4


@pytest.fixture(scope="module")
def build():
    registry = PluginHost().registry
    return lambda name, **options: registry.get("loss", name).build(options, "test", None)


class LinearText(nn.Module):
    """A stand-in text encoder: inputs {"x": [B, 4]} -> [B, 3]; one BatchNorm to show drift."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear, self.bn = nn.Linear(4, 3), nn.BatchNorm1d(3)

    def forward(self, inputs):
        return self.bn(self.linear(inputs["x"]))


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.text_encoder = LinearText()


def batch(*, epoch=1, step=0, steps=1, texts=None, dense=None, image_ids=DISTINCT) -> TrainingBatch:
    return TrainingBatch(
        stage="s", epoch=epoch, step=step, steps=steps, image_ids=image_ids, images=None, texts=texts, model=None,
        image_texts=lambda name: {"x": dense},
    )


def test_distillation_is_zero_when_student_equals_teacher():
    vectors = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    for distance in ("cosine", "l2", "l1"):
        assert distillation_loss(vectors, vectors.clone(), distance).item() == pytest.approx(0.0, abs=1e-6)


def test_distillation_is_the_mean_of_one_minus_cosine():
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    # cos = 1/√2 and −1: mean(1 − cos) = ((1 − 1/√2) + 2) / 2
    assert distillation_loss(student, teacher).item() == pytest.approx(((1 - 1 / math.sqrt(2)) + 2) / 2)


def test_hardest_negative_after_the_warm_up(build):
    loss = build("d2s-triplet", margin=0.2, warmup_epochs=1)
    assert loss(SCORES, DISTINCT, batch=batch(epoch=1)).item() == pytest.approx(HARDEST)


def test_the_warm_up_epoch_sums_all_negatives_on_a_linear_ramp(build):
    loss = build("d2s-triplet", margin=0.2, warmup_epochs=1)
    ramped = [loss(SCORES, DISTINCT, batch=batch(epoch=0, step=step, steps=4)).item() for step in range(4)]
    assert ramped == pytest.approx([SUM_HINGE * (step + 1) / 4 for step in range(4)])
    unramped = build("d2s-triplet", warmup_ramp=False)(SCORES, DISTINCT, batch=batch(epoch=0, steps=4))
    assert unramped.item() == pytest.approx(SUM_HINGE)


def test_a_longer_warm_up_sums_without_a_ramp_after_the_first_epoch(build):
    loss = build("d2s-triplet", warmup_epochs=2)
    assert loss(SCORES, DISTINCT, batch=batch(epoch=1, step=0, steps=4)).item() == pytest.approx(SUM_HINGE)
    assert loss(SCORES, DISTINCT, batch=batch(epoch=2, step=0, steps=4)).item() == pytest.approx(HARDEST)


def test_captions_of_the_same_image_are_never_negatives(build):
    same_image = torch.tensor([0, 0, 2])  # items 0 and 1 show one image
    # the pairs (row 1, col 0) = 0.3 and (col 0, row 1) = 0.1 are no longer negatives
    assert build("d2s-triplet")(SCORES, same_image, batch=batch()).item() == pytest.approx(0.15 + 0.4)
    unmasked = build("d2s-triplet", mask_same_image=False)(SCORES, same_image, batch=batch())
    assert unmasked.item() == pytest.approx(HARDEST)


def test_distill_loss_adds_the_weighted_distillation_to_the_alignment(build):
    loss = build("d2s-distill", align_weight=0.5, distill_weight=2.0)
    model = Model()
    loss.begin_stage(model)
    dense = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    student = torch.randn(3, 3, generator=torch.Generator().manual_seed(2))
    total = loss(SCORES, DISTINCT, batch=batch(texts=student, dense=dense))
    with torch.no_grad():
        teacher = model.eval().text_encoder({"x": dense})
    assert total.item() == pytest.approx(0.5 * HARDEST + 2.0 * distillation_loss(student, teacher).item(), rel=1e-5)
    assert loss.terms["align"] == pytest.approx(HARDEST) and loss.terms["distill"] > 0


def test_the_teacher_gets_no_gradient_and_the_student_does(build):
    loss = build("d2s-distill")
    model = Model()
    loss.begin_stage(model)
    student_encoder = model.text_encoder.train()
    dense = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    student = student_encoder({"x": torch.randn(3, 4, generator=torch.Generator().manual_seed(3))})
    loss(SCORES, DISTINCT, batch=batch(texts=student, dense=dense)).backward()
    assert all(not p.requires_grad and p.grad is None for p in loss.teacher.parameters())
    assert student_encoder.linear.weight.grad is not None and student_encoder.linear.weight.grad.abs().sum() > 0


def test_the_teacher_is_a_copy_that_does_not_follow_the_student(build):
    loss = build("d2s-distill")
    model = Model()
    loss.begin_stage(model)
    with torch.no_grad():
        model.text_encoder.linear.weight.add_(1.0)
    assert not torch.equal(loss.teacher.linear.weight, model.text_encoder.linear.weight)


@pytest.mark.parametrize(("mode", "drifts"), [("eval", False), ("train", True)])
def test_only_the_codes_train_mode_teacher_drifts(build, mode, drifts):
    loss = build("d2s-distill", teacher_mode=mode)
    loss.begin_stage(Model())
    before = loss.teacher.bn.running_mean.clone()
    dense = torch.randn(3, 4, generator=torch.Generator().manual_seed(1)) + 5
    loss(SCORES, DISTINCT, batch=batch(texts=torch.randn(3, 3), dense=dense))
    assert (not torch.equal(loss.teacher.bn.running_mean, before)) is drifts


def test_without_distillation_there_is_no_teacher(build):
    loss = build("d2s-distill", distill_weight=0.0)
    loss.begin_stage(Model())
    assert loss.teacher is None
    assert loss(SCORES, DISTINCT, batch=batch(texts=torch.randn(3, 3))).item() == pytest.approx(HARDEST)
    assert set(loss.terms) == {"align"}


def test_fixed_targets_are_computed_once_per_image_and_match_the_teacher(build):
    loss = build("d2s-distill")
    loss.begin_stage(Model())
    calls = []
    loss.teacher.register_forward_hook(lambda module, args, out: calls.append(len(out)))
    dense = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    first = loss.teacher_embeddings(batch(image_ids=torch.tensor([0, 1, 1]), dense=dense[[0, 1, 1]]))
    second = loss.teacher_embeddings(batch(image_ids=torch.tensor([3, 1, 0]), dense=dense[[3, 1, 0]]))
    assert calls == [2, 1]  # images 0 and 1, then only the new image 3
    with torch.no_grad():
        direct = loss.teacher({"x": dense})
    torch.testing.assert_close(first, direct[[0, 1, 1]])
    torch.testing.assert_close(second, direct[[3, 1, 0]])

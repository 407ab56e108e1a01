"""D2S-VSE's losses (docs/methods/d2s-vse.md, losses): hinge alignment with a warm-up, and dense-to-sparse
distillation from a frozen teacher.

Alignment, VSE++'s bidirectional hinge with margin α over S_ij = cos(v_i, t_j), summed over the
batch (`baselines.vse.losses.hinge_triplet_loss`):

    L_align = Σ_i max_{j∉P(i)} [α − S_ii + S_ij]_+ + Σ_j max_{i∉P(j)} [α − S_jj + S_ij]_+

P(i) is every item showing the same image as i: another caption of the image is never a
negative. In the first `warmup_epochs` epochs of a stage each max is a sum over all negatives
(VSE0), and in the stage's first epoch the term is scaled by a linear ramp, as the code's
``vse_mean_warmup_epochs = 1`` and ``warmup_alpha``; both restart in stage 2. The ramp is
(i + 1) / n_batches for batch i, reaching 1 on the epoch's last batch; the code's i / n_batches
gives its first batch no weight, which is nothing at F30K's 226 batches but a whole wasted epoch
on a split that fits one batch (the demo's 27 training images in stage 1).

Distillation (stage 2), with t̂_i the student's caption embedding (t + d̄, the text encoder's
output) and t_d,i the frozen teacher's embedding of the dense text of caption i's image:

    L_distill = (1/B) Σ_i (1 − cos(t̂_i, t_d,i)),    L = w_align · L_align + w_distill · L_distill

Both weights are 1 in the code; L_align is a sum over the batch and L_distill a mean, so the
alignment dominates in magnitude: kept, as the weights are options.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from baselines.vse.losses import hinge_triplet_loss, same_image_pairs
from harness.interfaces import BuildContext
from harness.training.batch import TrainingBatch


class D2STriplet(nn.Module):
    """`d2s-triplet`: L_align with the VSE0 warm-up and its linear ramp (module docstring).

    Stage 1 trains with it on (image, dense text) pairs; `d2s-distill` uses it for stage 2.

    Options:
        margin: α (the code: 0.2).
        warmup_epochs: epochs at the start of the stage that sum over all negatives (the code: 1);
            0 uses the hardest negative from the first batch.
        warmup_ramp: scale the loss by (i + 1) / n_batches at batch i of the stage's first epoch,
            if it is a warm-up epoch (the code: on, with i / n_batches).
        mask_same_image: captions of the same image are not negatives of each other (the code:
            on; it masks by image id).
    """

    reads_batch = True

    def __init__(
        self,
        ctx: BuildContext,
        *,
        margin: float = 0.2,
        warmup_epochs: int = 1,
        warmup_ramp: bool = True,
        mask_same_image: bool = True,
    ) -> None:
        super().__init__()
        self.margin = margin
        self.warmup_epochs = warmup_epochs
        self.warmup_ramp = warmup_ramp
        self.mask_same_image = mask_same_image
        self.terms: dict[str, float] = {}

    def alignment(self, scores: torch.Tensor, image_ids: torch.Tensor, batch: TrainingBatch) -> torch.Tensor:
        """scores [B, B] (positives on the diagonal), image_ids int64 [B] -> L_align (scalar)."""
        warming_up = batch.epoch < self.warmup_epochs
        mask = same_image_pairs(image_ids) if self.mask_same_image else None
        loss = hinge_triplet_loss(scores, self.margin, hardest=not warming_up, same_image_mask=mask)
        if warming_up and self.warmup_ramp and batch.epoch == 0:
            loss = loss * (batch.step + 1) / batch.steps
        return loss

    def forward(self, scores: torch.Tensor, image_ids: torch.Tensor, *, batch: TrainingBatch) -> torch.Tensor:
        loss = self.alignment(scores, image_ids, batch)
        self.terms = {"align": loss.item()}
        return loss


class D2SDistillation(nn.Module):
    """`d2s-distill`: w_align · L_align + w_distill · L_distill against a frozen teacher.

    When the stage begins (`begin_stage`), the teacher becomes a frozen copy of the model's text
    encoder as the previous stage left it: stage 1's encoder, as in the code, which loads the
    stage-1 weights into a second encoder. It is kept in this loss, not in the model: the
    optimiser never sees it, the checkpoint does not hold it, inference does not run it. Each
    step it encodes the dense text (text source `teacher_text`) of every item's image, without
    gradient.

    Teacher mode: the code leaves the teacher in train mode, so its targets are
    stochastic (word masking on the dense text, dropout) and its BatchNorm statistics drift.
    Here it runs in eval mode by default (fixed targets, nothing changes); ``teacher_mode =
    "train"`` reproduces the code. Fixed targets are computed once per image and stage and then
    reused: the same values the code's per-step forward would give (an embedding does not depend
    on its batch: padding is masked throughout), at a fraction of the cost.

    Options (plus `d2s-triplet`'s ``margin``, ``warmup_epochs``, ``warmup_ramp``,
    ``mask_same_image`` for the alignment term):
        align_weight: w_align (the code: 1).
        distill_weight: w_distill (the code: 1); 0 trains without distillation and builds no teacher.
        distance: ``cosine`` (1 − cos, the paper's choice), ``l2`` (mean squared error) or ``l1``
            (mean absolute error), the paper's distillation-function ablation; l1 and l2 compare
            the l2-normalised embeddings (the code's l2 option compares unnormalised ones).
        teacher_text: the job's text source the teacher reads (the recipe's ``dense``).
        teacher_mode: ``eval`` (fixed targets) or ``train`` (the code).
    """

    reads_batch = True

    def __init__(
        self,
        ctx: BuildContext,
        *,
        margin: float = 0.2,
        warmup_epochs: int = 1,
        warmup_ramp: bool = True,
        mask_same_image: bool = True,
        align_weight: float = 1.0,
        distill_weight: float = 1.0,
        distance: Literal["cosine", "l2", "l1"] = "cosine",
        teacher_text: str = "dense",
        teacher_mode: Literal["eval", "train"] = "eval",
    ) -> None:
        super().__init__()
        self.align = D2STriplet(
            ctx, margin=margin, warmup_epochs=warmup_epochs, warmup_ramp=warmup_ramp, mask_same_image=mask_same_image
        )
        self.align_weight = align_weight
        self.distill_weight = distill_weight
        self.distance = distance
        self.teacher_text = teacher_text
        self.teacher_mode = teacher_mode
        self.teacher: nn.Module | None = None
        self.terms: dict[str, float] = {}
        self._targets: dict[int, torch.Tensor] = {}

    def begin_stage(self, model: nn.Module) -> None:
        """Freeze a copy of ``model.text_encoder`` as the teacher (none if distill_weight is 0)."""
        self._targets = {}
        if self.distill_weight == 0:
            self.teacher = None
            return
        teacher = copy.deepcopy(model.text_encoder)
        teacher.requires_grad_(False)
        self.teacher = teacher.train(self.teacher_mode == "train")

    def teacher_embeddings(self, batch: TrainingBatch) -> torch.Tensor:
        """t_d [B, D]: the teacher on the dense text of each item's image, without gradient
        (in eval mode, each image's target is computed on its first appearance in the stage)."""
        if self.teacher is None:
            raise RuntimeError("d2s-distill: no teacher; begin_stage(model) must run before the first step")
        self.teacher.train(self.teacher_mode == "train")
        if self.teacher_mode == "train":
            with torch.no_grad():
                return self.teacher(batch.image_texts(self.teacher_text))
        images = batch.image_ids.tolist()
        first_new = {image: row for row, image in reversed(list(enumerate(images))) if image not in self._targets}
        if first_new:
            rows = torch.tensor(list(first_new.values()), device=batch.image_ids.device)
            inputs = {name: value[rows] for name, value in batch.image_texts(self.teacher_text).items()}
            with torch.no_grad():
                for image, target in zip(first_new, self.teacher(inputs)):
                    self._targets[image] = target
        return torch.stack([self._targets[image] for image in images])

    def forward(self, scores: torch.Tensor, image_ids: torch.Tensor, *, batch: TrainingBatch) -> torch.Tensor:
        """scores [B, B], image_ids int64 [B], the batch (student texts t̂ [B, D]) -> L (scalar)."""
        align = self.align.alignment(scores, image_ids, batch)
        self.terms = {"align": align.item()}
        if self.distill_weight == 0:
            return self.align_weight * align
        distill = distillation_loss(batch.texts, self.teacher_embeddings(batch), self.distance)
        self.terms["distill"] = distill.item()
        return self.align_weight * align + self.distill_weight * distill


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, distance: str = "cosine") -> torch.Tensor:
    """student, teacher [B, D] -> scalar: mean(1 − cos) (``cosine``), MSE of the unit vectors
    (``l2``) or their mean absolute difference (``l1``). Zero when student equals teacher."""
    if distance == "cosine":
        return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    student, teacher = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    if distance == "l2":
        return F.mse_loss(student, teacher)
    if distance == "l1":
        return F.l1_loss(student, teacher)
    raise ValueError(f"unknown distance {distance!r}; choose cosine, l2 or l1")

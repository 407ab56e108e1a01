"""The VSE hinge triplet loss: sum of hinges (VSE0) and hardest negative (VSE++).

The VSE++ paper's SH and MH losses (Faghri et al., BMVC 2018), as vsepp's ``ContrastiveLoss``
(also SCAN's and VSE∞'s). With score matrix
S [B, B], S_ij = s(image i, caption j), positives on the diagonal and margin α:

    caption retrieval (image i anchors row i):     c_s(i, j)  = [α + S_ij − S_ii]_+ , j ≠ i
    image retrieval (caption j anchors column j):  c_im(i, j) = [α + S_ij − S_jj]_+ , i ≠ j

VSE0 sums both over all negatives; VSE++ keeps only the hardest negative of each anchor.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.interfaces import BuildContext


def hinge_triplet_loss(
    scores: torch.Tensor,
    margin: float,
    hardest: bool,
    same_image_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bidirectional hinge triplet loss of one batch, summed over anchors (the VSE++ paper's SH / MH loss).

    Args:
        scores: [B, B], scores[i, j] = s(image i, caption j); the diagonal holds the positives.
        margin: α (paper: 0.2).
        hardest: True = max over each anchor's negatives (VSE++ "MH", ``--max_violation``);
            False = sum over them (VSE0 "SH").
        same_image_mask: optional bool [B, B], True where pair i and pair j show the same image
            (HREM ``mask_repeat``); those entries are treated like the diagonal, i.e. not
            negatives. None = only the diagonal is excluded, as vsepp / SCAN / VSE∞.

    Returns:
        A scalar. It is a SUM over the batch, not a mean, as in the reference code: the gradient
        scale grows with B, and the recipes' learning rate (2e-4) and global grad-norm clip (2.0)
        were tuned for that scale; a mean would shrink the gradients B-fold and change how often
        the clip bites.

    The hinge is applied before excluding the diagonal (masked entries are zeroed afterwards),
    so with `hardest` the max runs over hinge values ≥ 0 and an anchor without a violating
    negative contributes 0.
    """
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square [B, B] matrix, got shape {tuple(scores.shape)}")
    if same_image_mask is not None and same_image_mask.shape != scores.shape:
        raise ValueError(
            f"same_image_mask shape {tuple(same_image_mask.shape)} "
            f"!= scores shape {tuple(scores.shape)}"
        )
    positives = scores.diagonal()
    cost_caption = (margin + scores - positives[:, None]).clamp(min=0)  # c_s: image i, row i
    cost_image = (margin + scores - positives[None, :]).clamp(min=0)  # c_im: caption j, column j
    not_negative = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    if same_image_mask is not None:
        not_negative = not_negative | same_image_mask
    cost_caption = cost_caption.masked_fill(not_negative, 0)
    cost_image = cost_image.masked_fill(not_negative, 0)
    if hardest:
        return cost_caption.max(dim=1).values.sum() + cost_image.max(dim=0).values.sum()
    return cost_caption.sum() + cost_image.sum()


def same_image_pairs(image_ids: torch.Tensor) -> torch.Tensor:
    """image_ids int64 [B] -> bool [B, B], True where pairs i ≠ j share an image."""
    same = image_ids[:, None] == image_ids[None, :]
    return same & ~torch.eye(len(image_ids), dtype=torch.bool, device=image_ids.device)


class _HingeTriplet(nn.Module):
    """Loss component around `hinge_triplet_loss`; subclasses fix `hardest`.

    Options:
        margin: α (paper: 0.2).
        mask_same_image: do not treat two captions of the same image in a batch as negatives of
            each other (HREM ``mask_repeat``). Default False is faithful to vsepp / SCAN / VSE∞,
            which sample batches per caption and so do treat them as negatives.
    """

    hardest: bool

    def __init__(
        self, ctx: BuildContext, *, margin: float = 0.2, mask_same_image: bool = False
    ) -> None:
        super().__init__()
        self.margin = margin
        self.mask_same_image = mask_same_image

    def forward(self, scores: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
        """scores [B, B] (positives on the diagonal), image_ids int64 [B] -> scalar loss."""
        mask = same_image_pairs(image_ids) if self.mask_same_image else None
        return hinge_triplet_loss(scores, self.margin, self.hardest, same_image_mask=mask)


class HardestNegativeTriplet(_HingeTriplet):
    """VSE++ loss ("MH"): each anchor's hardest negative only (``--max_violation``)."""

    hardest = True


class SumHingeTriplet(_HingeTriplet):
    """VSE0 loss ("SH"): hinges summed over all negatives; VSE∞'s warm-up epoch."""

    hardest = False

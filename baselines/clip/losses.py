"""The training objectives of CLIP (symmetric InfoNCE) and SigLIP (pairwise sigmoid).

Both read logits that already carry the learned temperature (`clip-logits`). A batch of
caption-indexed pairs can hold two captions of one image; those pairs are positives of each
other, never negatives: InfoNCE leaves them out of each other's softmax, the sigmoid loss labels
them +1. Generated negative columns (``scores[:, B:]``) are negatives of every image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.interfaces import BuildContext


def same_image(image_ids: torch.Tensor) -> torch.Tensor:
    """bool [B, B]: pairs i and j show the same image."""
    return image_ids[:, None] == image_ids[None, :]


class CLIPInfoNCE(nn.Module):
    """`clip-infonce`: ½ (CE(image → its caption) + CE(caption → its image)) over the batch's
    logits (CLIP, Radford et al. 2021); other captions of a pair's image are left out."""

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()

    def forward(self, scores: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
        batch = len(image_ids)
        others = same_image(image_ids) & ~torch.eye(batch, dtype=torch.bool, device=scores.device)
        real = scores[:, :batch].masked_fill(others, float("-inf"))
        targets = torch.arange(batch, device=scores.device)
        image_to_text = F.cross_entropy(torch.cat([real, scores[:, batch:]], dim=1), targets)
        text_to_image = F.cross_entropy(real.T, targets)
        return (image_to_text + text_to_image) / 2


class SigLIPSigmoid(nn.Module):
    """`siglip-sigmoid`: −(1/B) Σ_ij log σ(z_ij · s_ij), z = +1 for an image and a caption of it,
    −1 otherwise (SigLIP, Zhai et al. 2023); generated columns are all −1."""

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()

    def forward(self, scores: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
        batch = len(image_ids)
        labels = -torch.ones_like(scores)
        labels[:, :batch] = torch.where(same_image(image_ids), 1.0, -1.0)
        return -F.logsigmoid(labels * scores).sum() / batch

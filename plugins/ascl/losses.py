"""AsCL's InfoNCE with generated negatives (docs/methods/ascl.md; the code's ``NTxent_Loss_v2``).

Scores S [B, B + G]: column j < B is caption j of the batch (its positive is image j), column
B + k the negative generated from caption k (the trainer appends them; G = B, or 0 without
negative generators). With temperature τ:

1. false-negative guard: a generated column scoring above an image's positive,
   S[i, B + k] > S[i, i], is set to 0 (not −∞: it stays in the denominator as exp(0/τ));
2. ℒ_i2t = −mean_i log softmax_j(S[i, :] / τ)[i] over all B + G columns;
3. ℒ_t2i = −mean_j log softmax_i(S[:, j] / τ)[j] over the B images, real captions only;
4. ℒ = ℒ_i2t + ℒ_t2i.

The trainer weights the pass on real captions and the pass on generated positives T⁺
(`generators.positive_weight`); each pass is this loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.interfaces import BuildContext


def generated_negative_guard(scores: torch.Tensor) -> torch.Tensor:
    """scores [B, B + G] -> the same with every generated entry above its row's positive set to 0.

    The code's O(B²) Python double loop, vectorised (identical result).
    """
    batch = scores.shape[0]
    real, generated = scores[:, :batch], scores[:, batch:]
    too_high = generated > real.diagonal()[:, None]
    return torch.cat([real, generated.masked_fill(too_high, 0)], dim=1)


class AsCLInfoNCE(nn.Module):
    """`ascl-infonce`: guarded InfoNCE, image→text over real and generated captions plus
    text→image over the batch's images (see the module docstring).

    Same-image captions in a batch are negatives of each other, as in the code.

    Options:
        temperature: τ (the code: 0.1).
    """

    def __init__(self, ctx: BuildContext, *, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, scores: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
        """scores [B, B + G] (positives on the diagonal of the first B columns), image_ids [B] -> scalar."""
        batch = scores.shape[0]
        if scores.dim() != 2 or scores.shape[1] < batch:
            raise ValueError(f"scores must be [B, B + G], got shape {tuple(scores.shape)}")
        scores = generated_negative_guard(scores) / self.temperature
        targets = torch.arange(batch, device=scores.device)
        image_to_text = F.cross_entropy(scores, targets)
        text_to_image = F.cross_entropy(scores[:, :batch].T, targets)
        return image_to_text + text_to_image

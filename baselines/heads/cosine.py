"""Global similarity heads: one matrix product scores every pair."""

from __future__ import annotations

import torch
from torch import nn

from baselines.vse.encoders import l2_normalize
from harness.embeddings import VectorSets


class CosineHead(nn.Module):
    """s(i, c) = cos(v_i, u_c) for global embeddings [n_i, D] x [n_c, D] -> [n_i, n_c].

    With ``normalize=False`` it is the plain inner product vᵀu, which is what the VSE code bases
    compute (their encoders normalise; the VSE0 ``--no_imgnorm`` recipe relies on skipping it).
    Set-valued embeddings (`VectorSets`, e.g. AsCL's regions and words) are compared by their
    means, so a grid can swap a cross-attention head for this one as the "no fusion" baseline.
    """

    def __init__(self, ctx: object, *, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize

    def forward(self, images: torch.Tensor | VectorSets, texts: torch.Tensor | VectorSets) -> torch.Tensor:
        images, texts = (x.mean() if isinstance(x, VectorSets) else x for x in (images, texts))
        if self.normalize:
            images, texts = l2_normalize(images), l2_normalize(texts)
        return images @ texts.T

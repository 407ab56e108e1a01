"""Global similarity heads: one matrix product scores every pair."""

from __future__ import annotations

import torch
from torch import nn

from baselines.vse.encoders import l2_normalize


class CosineHead(nn.Module):
    """s(i, c) = cos(v_i, u_c) for global embeddings [n_i, D] x [n_c, D] -> [n_i, n_c].

    With ``normalize=False`` it is the plain inner product vᵀu, which is what the VSE code bases
    compute (their encoders normalise; the VSE0 ``--no_imgnorm`` recipe relies on skipping it).
    """

    def __init__(self, ctx: object, *, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            images, texts = l2_normalize(images), l2_normalize(texts)
        return images @ texts.T

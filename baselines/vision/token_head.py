"""The trainable head on a fine-tuned backbone's tokens: size augmentation, projection, pooling.

VSE∞ (grid features of a fine-tuned CNN) and D2S-VSE (a fine-tuned ViT's tokens) share it: in
training each image's token set is thinned by the size augmentation of their code; every token
is projected to the joint space; the set is pooled (GPO, mean, or the class token) into one
unit vector, or kept as a set of unit vectors for a cross-attention head.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from baselines.vse.encoders import l2_normalize
from baselines.vse_infinity.augment import compact
from baselines.vse_infinity.pooling import make_pooling
from harness.embeddings import VectorSets

TokenPooling = Literal["gpo", "mean", "cls"]
TokenOutput = Literal["global", "regions"]

AUGMENT_SHARE = 0.2
"""The share of images the size augmentation leaves whole (ρ ≤ 0.2 in the VSE∞ and D2S code)."""


def drop_tokens(tokens: torch.Tensor, rate: float) -> VectorSets:
    """The size augmentation of the VSE∞ grid and D2S-VSE code: per image ρ ~ U(0, 1); an image
    with ρ > 0.2 loses each token with probability ``rate · ρ``, the others keep every token.
    At least one token survives. tokens [B, N, C] -> `VectorSets` of the kept, in order."""
    batch, count = tokens.shape[:2]
    rho = torch.rand(batch, 1, device=tokens.device)
    drop = torch.where(rho > AUGMENT_SHARE, rate * rho, torch.zeros_like(rho))
    keep = torch.rand(batch, count, device=tokens.device) > drop
    keep[~keep.any(dim=1), 0] = True
    vectors, lengths = compact(tokens, keep)
    return VectorSets(vectors, lengths)


class TokenHead(nn.Module):
    """Tokens [B, N, C] of a backbone -> Tensor [B, embed_dim] or `VectorSets` (``regions``).

    The projection is Linear(C → embed_dim) with Xavier-uniform weights and zero bias (the VSE
    codes' ``fc``); ``cls`` pooling projects the first token alone (it needs a class token and
    takes no token drop).
    """

    def __init__(self, width: int, embed_dim: int, pooling: TokenPooling, output: TokenOutput, token_drop: float) -> None:
        super().__init__()
        self.fc = nn.Linear(width, embed_dim)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        self.pooling_kind, self.output, self.token_drop = pooling, output, token_drop
        self.pooling = make_pooling(pooling) if pooling != "cls" else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor | VectorSets:
        if self.pooling_kind == "cls" and self.output == "global":
            return l2_normalize(self.fc(tokens[:, 0]))
        if self.training and self.token_drop > 0:
            sets = drop_tokens(tokens, self.token_drop)
        else:
            sets = VectorSets(tokens, torch.full((len(tokens),), tokens.shape[1], dtype=torch.long, device=tokens.device))
        projected = self.fc(sets.vectors) * sets.mask()[..., None]
        if self.output == "regions":
            return VectorSets(l2_normalize(projected) * sets.mask()[..., None], sets.lengths)
        return l2_normalize(self.pooling(projected, sets.lengths))

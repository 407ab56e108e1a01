"""`clip-logits`: the scaled cosine of CLIP and SigLIP, with its learnable temperature (and bias).

s(v, t) = exp(logit_scale) · cos(v, t) (+ logit_bias for SigLIP): the model's own logits. The
temperature lives in the head so that it trains with the model, as in CLIP; ranking is the
cosine's either way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from baselines.clip.checkpoints import dual_encoder_checkpoint
from harness.interfaces import BuildContext

MAX_LOGIT_SCALE = math.log(100)
"""CLIP clips its learned temperature at 100 (a logit scale of log 100)."""


class CLIPLogitsHead(nn.Module):
    """Options:
        model: a CLIP or SigLIP checkpoint to take the trained scale (and bias) from; without
            one, `logit_scale` and `logit_bias` start the head (CLIP's initial log(1 / 0.07), no
            bias; SigLIP's paper starts at log 10 and −10).
        logit_scale: the initial log temperature, when no model is given.
        logit_bias: the initial bias (SigLIP), when no model is given; None: no bias.
    """

    def __init__(self, ctx: BuildContext, *, model: str | None = None, logit_scale: float = math.log(1 / 0.07), logit_bias: float | None = None) -> None:
        super().__init__()
        if model is not None:
            scalars = dual_encoder_checkpoint(model).scalars()
            logit_scale, logit_bias = scalars["logit_scale"], scalars.get("logit_bias")
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(logit_bias))) if logit_bias is not None else None

    @staticmethod
    def check_options(*, model: str | None, **_: object) -> None:
        if model is not None:
            dual_encoder_checkpoint(model).scalars()

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """[n_i, D] x [n_c, D] -> logits [n_i, n_c]."""
        cosine = F.normalize(images, dim=-1) @ F.normalize(texts, dim=-1).T
        logits = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * cosine
        return logits + self.logit_bias if self.logit_bias is not None else logits

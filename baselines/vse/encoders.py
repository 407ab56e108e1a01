"""VSE++ encoders: a linear head on precomputed image features and a GRU over word ids.

Both map into one joint space (default 1024-d) and l2-normalise there, so the cosine similarity
of the VSE++ loss is a plain dot product (docs/methods/vse-pp.md).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from baselines.vse.vocab import Vocabulary
from harness.errors import UserError
from harness.interfaces import BuildContext


def l2_normalize(x: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """``x / (‖x‖₂ + eps)`` along `dim`; any shape.

    The SCAN / VSE∞ l2norm: the eps keeps an all-zero vector (e.g. a padded region) finite,
    where vsepp's eps-free version would give NaN.
    """
    return x / (x.norm(dim=dim, keepdim=True) + eps)


class LinearImageEncoder(nn.Module):
    """VSE++ image head for precomputed features: ``Linear(in_dim -> embed_dim)``, then l2norm.

    vsepp's ``EncoderImagePrecomp`` (the `_precomp` branch). A region-set feature ([R, D] per image, e.g. the
    ``regions`` grid of a CNN) is averaged over regions first: VSE++ consumes one pooled CNN
    vector per image, and averaging the grid is that pooled vector (VSE∞'s "AvgPool" VSE++
    baseline). Since the head is linear, this equals averaging the per-region projections.

    Options:
        feature: which image feature to read (one of ``ctx.image_feature_shapes``).
        embed_dim: joint embedding size (paper: 1024).
        l2_normalize_input: l2-normalise the (averaged) feature before the linear layer, as the
            full-image VSE++ encoder does with its CNN output; the precomp branch assumes the
            stored features are already normalised and does not.
        normalize: l2-normalise the output; False is the VSE0 ``--no_imgnorm`` recipe.
    """

    def __init__(
        self,
        ctx: BuildContext,
        *,
        feature: str = "pooled",
        embed_dim: int = 1024,
        l2_normalize_input: bool = False,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        offered = ctx.image_feature_shapes
        if feature not in offered:
            listed = ", ".join(sorted(offered)) or "none"
            raise UserError(f"image feature {feature!r} is not offered; offered: {listed}")
        shape = tuple(offered[feature])
        if len(shape) not in (1, 2):
            raise UserError(
                f"image feature {feature!r} has per-item shape {shape}; "
                "LinearImageEncoder needs a vector [D] or a region set [R, D]"
            )
        self.feature = feature
        self.average_regions = len(shape) == 2
        self.l2_normalize_input = l2_normalize_input
        self.normalize = normalize
        self.fc = nn.Linear(shape[-1], embed_dim)
        # Xavier-uniform, r = sqrt(6) / sqrt(in + out), bias 0 (vsepp EncoderImagePrecomp).
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """features[self.feature]: [B, D] or [B, R, D] -> embeddings [B, embed_dim]."""
        x = features[self.feature]
        if self.average_regions:
            x = x.mean(dim=1)
        if self.l2_normalize_input:
            x = l2_normalize(x)
        x = self.fc(x)
        return l2_normalize(x) if self.normalize else x


class GRUTextEncoder(nn.Module):
    """VSE++ / SCAN caption encoder: word embedding -> GRU -> sentence vector -> l2norm.

    vsepp's ``EncoderText`` (VSE++, unidirectional) and SCAN's (``--bi_gru``). The vocabulary is
    built from ``ctx.train_captions`` only (`Vocabulary`).

    Sentence vector: the GRU output at the last valid step (index length-1) of the top layer, as
    VSE++. For ``bidirectional=True`` the two directions are averaged as SCAN / VSE∞ average them
    per step (so the size stays `embed_dim`); for a single vector the forward direction is read
    at its last valid step and the backward direction at step 0, where each has seen the whole
    caption. Both are the GRU's final hidden states over a packed sequence, which is what
    `forward` reads.

    Options:
        word_dim: word embedding size (paper: 300).
        embed_dim: GRU hidden size = joint embedding size (paper: 1024).
        num_layers: stacked GRU layers (paper: 1).
        bidirectional: BiGRU with directions averaged (SCAN, VSE∞-BiGRU); VSE++ is unidirectional.
        min_count: keep training words seen at least this often (paper: 4).
        normalize: l2-normalise the output.
    """

    def __init__(
        self,
        ctx: BuildContext,
        *,
        word_dim: int = 300,
        embed_dim: int = 1024,
        num_layers: int = 1,
        bidirectional: bool = False,
        min_count: int = 4,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.vocabulary = Vocabulary.from_captions(ctx.train_captions, min_count=min_count)
        self.bidirectional = bidirectional
        self.normalize = normalize
        self.embedding = nn.Embedding(len(self.vocabulary), word_dim)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        self.gru = nn.GRU(
            word_dim, embed_dim, num_layers, batch_first=True, bidirectional=bidirectional
        )

    def prepare(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise once per split: ``ids`` int64 [M, L] (zero-padded), ``lengths`` int64 [M]."""
        ids, lengths = self.vocabulary.encode(captions)
        return {"ids": ids, "lengths": lengths}

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """inputs: ``ids`` [B, L], ``lengths`` [B], in any order -> embeddings [B, embed_dim].

        Padding beyond the batch's longest caption is trimmed (a batch drawn from a split is
        padded to the split's longest caption), and lengths need not be sorted: the result of
        each caption depends neither on the padding nor on the other captions in the batch.
        """
        lengths = inputs["lengths"].cpu()
        ids = inputs["ids"][:, : int(lengths.max())]
        packed = pack_padded_sequence(
            self.embedding(ids), lengths, batch_first=True, enforce_sorted=False
        )
        # hidden: [num_layers * num_directions, B, embed_dim], in the input's batch order.
        _, hidden = self.gru(packed)
        if self.bidirectional:
            sentence = (hidden[-2] + hidden[-1]) / 2  # forward at length-1, backward at step 0
        else:
            sentence = hidden[-1]
        return l2_normalize(sentence) if self.normalize else sentence

"""SCAN encoders: one embedding per image region and per caption word (docs/methods/scan.md).

Unlike VSE++, nothing is pooled: the image stays a set of region vectors and the caption a
sequence of word vectors, each l2-normalised on its own, and the similarity head
attends between the two sets. Both encoders return `VectorSets`.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from baselines.vse.encoders import GRUTextEncoder, l2_normalize
from harness.embeddings import VectorSets
from harness.errors import UserError
from harness.interfaces import BuildContext


class SCANImageEncoder(nn.Module):
    """Per-region ``Linear(in_dim -> embed_dim)`` (Xavier-uniform, bias 0), then per-region l2norm.

    SCAN model.py ``EncoderImagePrecomp`` applied to every region. The feature must be a region
    set [R, in_dim] per image: BUTD precomp features are [36, 2048]; the demo's EfficientNet-Lite0
    ``regions`` are its 7×7 grid, [49, 1280]. Every image has all R regions (lengths = R).

    Options:
        feature: which image feature to read (one of ``ctx.image_feature_shapes``).
        embed_dim: joint embedding size (paper: 1024).
        normalize: l2-normalise each region; False is SCAN's ``--no_imgnorm``.
    """

    def __init__(
        self, ctx: BuildContext, *, feature: str = "regions", embed_dim: int = 1024, normalize: bool = True
    ) -> None:
        super().__init__()
        offered = ctx.image_feature_shapes
        if feature not in offered:
            listed = ", ".join(sorted(offered)) or "none"
            raise UserError(f"image feature {feature!r} is not offered; offered: {listed}")
        shape = tuple(offered[feature])
        if len(shape) != 2:
            raise UserError(
                f"image feature {feature!r} has per-item shape {shape}; "
                "SCANImageEncoder needs a region set [R, D]"
            )
        self.feature = feature
        self.normalize = normalize
        self.fc = nn.Linear(shape[1], embed_dim)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: Mapping[str, torch.Tensor]) -> VectorSets:
        """features[self.feature]: [B, R, in_dim] -> VectorSets [B, R, embed_dim], lengths all R."""
        regions = self.fc(features[self.feature])
        if self.normalize:
            regions = l2_normalize(regions)
        batch, n_regions = regions.shape[:2]
        lengths = torch.full((batch,), n_regions, dtype=torch.int64, device=regions.device)
        return VectorSets(regions, lengths)


class SCANTextEncoder(GRUTextEncoder):
    """BiGRU over word ids, one l2-normalised vector per word (SCAN ``EncoderText --bi_gru``).

    The vocabulary, word embedding (uniform ±0.1) and GRU are VSE++'s (`GRUTextEncoder`, built
    from ``ctx.train_captions`` only); SCAN keeps the output at every step instead of the last
    one, averages the two directions per step (so the size stays `embed_dim`), and l2-normalises
    each word. Words include ``<start>`` and ``<end>``, as in SCAN.

    Options:
        word_dim: word embedding size (paper: 300).
        embed_dim: GRU hidden size = joint embedding size (paper: 1024).
        min_count: keep training words seen at least this often (paper: 4).
        bidirectional: BiGRU with directions averaged (all published SCAN runs use ``--bi_gru``).
        num_layers: stacked GRU layers (paper: 1).
    """

    def __init__(
        self,
        ctx: BuildContext,
        *,
        word_dim: int = 300,
        embed_dim: int = 1024,
        min_count: int = 4,
        bidirectional: bool = True,
        num_layers: int = 1,
    ) -> None:
        super().__init__(
            ctx,
            word_dim=word_dim,
            embed_dim=embed_dim,
            num_layers=num_layers,
            bidirectional=bidirectional,
            min_count=min_count,
        )

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> VectorSets:
        """inputs: ``ids`` [B, L], ``lengths`` [B] (from `prepare`) -> VectorSets [B, L', embed_dim].

        L' is the batch's longest caption; rows past a caption's length are zero. Captions need
        not be sorted, and a caption's vectors do not depend on the others in the batch.
        """
        lengths = inputs["lengths"]
        ids = inputs["ids"][:, : int(lengths.max())]
        packed = pack_padded_sequence(
            self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, _ = self.gru(packed)
        # [B, L', directions * embed_dim], back in input order, zero past each length.
        words, _ = pad_packed_sequence(outputs, batch_first=True, total_length=ids.shape[1])
        if self.bidirectional:
            forward_words, backward_words = words.chunk(2, dim=-1)
            words = (forward_words + backward_words) / 2
        return VectorSets(l2_normalize(words), lengths)

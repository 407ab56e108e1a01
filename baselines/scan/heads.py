"""The SCAN similarity head: stacked cross attention between region sets and word sets."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from baselines.scan.attention import Aggregation, stacked_cross_attention
from harness.embeddings import VectorSets
from harness.errors import UserError


class StackedCrossAttentionHead(nn.Module):
    """SCAN score s(image, caption) for every pair: VectorSets [n_i, R, D] × [n_c, L, D] -> [n_i, n_c].

    SCAN's stacked cross attention (the code's model.py ``xattn_score_t2i`` / ``xattn_score_i2t``).
    Inputs are the
    encoders' per-region and per-word vectors, unit-norm. Pairs are scored in blocks of at most
    `pair_chunk` (images × captions), each block one batched tensor program
    (`stacked_cross_attention`), so evaluation cost is FLOPs, not one kernel launch per caption
    as in the reference's sharded loop (``shard_xattn_*``). Each pair's score depends on that pair only, never
    on the block it was computed in or on padding.

    The attention runs in float32 (float64 inputs stay float64), with autocast off: its eps
    (1e-8) underflows in float16, and λ-scaled softmax / LSE are precision-sensitive.

    Options:
        direction: ``t2i`` (t-i: words attend to regions, aggregate over words) or ``i2t``
            (i-t: regions attend to words, aggregate over regions); ``--cross_attn``.
        lambda_softmax: λ1, inverse temperature of the attention softmax (paper: 9 for t-i,
            4 for i-t); ``--lambda_softmax``.
        aggregation: ``avg`` (mean over queries) or ``lse`` (LogSumExp pooling); ``--agg_func``.
        lambda_lse: λ2 of LSE pooling (paper: 6 for t-i; 5 F30K / 20 COCO for i-t); unused by avg.
        pair_chunk: most (image, caption) pairs per block (default: one 128 × 128 training
            batch). A block's working memory is five to six [pairs, C, Q] float32 tensors
            (C, Q = context and query set sizes): 149 MB measured for 36 regions × 12 words
            (benchmarks/test_scan_scoring.py). In training, autograd keeps every block's
            intermediates, so it bounds evaluation memory only.
    """

    def __init__(
        self,
        ctx: object,
        *,
        direction: Literal["t2i", "i2t"] = "t2i",
        lambda_softmax: float = 9.0,
        aggregation: Aggregation = "avg",
        lambda_lse: float = 6.0,
        pair_chunk: int = 16384,
    ) -> None:
        super().__init__()
        if lambda_lse <= 0:
            raise UserError(f"scan-attention: lambda_lse must be > 0 (got {lambda_lse})")
        if pair_chunk < 1:
            raise UserError(f"scan-attention: pair_chunk must be ≥ 1 (got {pair_chunk})")
        self.direction = direction
        self.lambda_softmax = lambda_softmax
        self.aggregation = aggregation
        self.lambda_lse = lambda_lse
        self.pair_chunk = pair_chunk

    def forward(self, images: VectorSets, texts: VectorSets) -> torch.Tensor:
        """images: regions [n_i, R, D] + lengths; texts: words [n_c, L, D] + lengths -> [n_i, n_c]."""
        if not (isinstance(images, VectorSets) and isinstance(texts, VectorSets)):
            raise UserError(
                "scan-attention scores local embeddings (VectorSets of regions and words); "
                "pair it with local encoders such as scan-region and scan-bigru"
            )
        caption_block = min(len(texts), self.pair_chunk)
        image_block = max(1, self.pair_chunk // caption_block)
        rows = []
        with torch.autocast(images.vectors.device.type, enabled=False):
            for i in range(0, len(images), image_block):
                blocks = [
                    self._score_block(images[i : i + image_block], texts[j : j + caption_block])
                    for j in range(0, len(texts), caption_block)
                ]
                rows.append(torch.cat(blocks, dim=1))
        return torch.cat(rows, dim=0)

    def _score_block(self, images: VectorSets, texts: VectorSets) -> torch.Tensor:
        """One block, [bi, R, D] × [bc, L, D] -> [bi, bc]; padded rows are zeroed first."""
        regions, region_mask = _real_rows(images)
        words, word_mask = _real_rows(texts)
        options = dict(
            lambda_softmax=self.lambda_softmax, aggregation=self.aggregation, lambda_lse=self.lambda_lse
        )
        if self.direction == "t2i":
            return stacked_cross_attention(regions, region_mask, words, word_mask, **options)
        return stacked_cross_attention(words, word_mask, regions, region_mask, **options).T


def _real_rows(sets: VectorSets) -> tuple[torch.Tensor, torch.Tensor]:
    """vectors [B, N, D] at float32 or wider with rows past each length set to 0, and the mask
    bool [B, N]. Zeroing makes the padding harmless even if an encoder left NaNs there (an
    l2norm of a zero row in float16)."""
    mask = sets.mask()
    vectors = sets.vectors.to(torch.promote_types(sets.vectors.dtype, torch.float32))
    return vectors.masked_fill(~mask[..., None], 0), mask

"""The SCAN similarity head: stacked cross attention between region sets and word sets."""

from __future__ import annotations

import sys

from typing import Literal

import torch
from torch import nn

from baselines.heads.blocks import (
    gather,
    needs_checkpoint,
    padding_is_zero,
    score_blockwise,
    score_grouped,
    zero_padding,
)
from baselines.scan.attention import (
    Aggregation,
    aligned_cross_attention,
    context_grouped_cross_attention,
    query_grouped_cross_attention,
    stacked_cross_attention,
)
from harness.embeddings import VectorSets
from harness.errors import UserError


CPU_GATHER_BYTES = 32 << 20
"""Most bytes one `score_pairs` block gathers on the CPU. glibc serves allocations of up to
32 MB from its heap and maps larger ones afresh, so a larger gathered block pays a page fault
per 4 KB on every block: at 36 regions, 12 words, 1024-d, re-rank lists scored 30k pairs/s
with 140 MB blocks and 63k pairs/s with 35 MB ones. CUDA's caching allocator has no such cost."""


def _gather_limit(floats_per_pair: int, device: torch.device) -> int:
    """Pairs per gathered block that `CPU_GATHER_BYTES` allows on the CPU (float32); no limit elsewhere."""
    return CPU_GATHER_BYTES // (4 * floats_per_pair) if device.type == "cpu" else sys.maxsize


class StackedCrossAttentionHead(nn.Module):
    """SCAN score s(image, caption) for every pair: VectorSets [n_i, R, D] × [n_c, L, D] -> [n_i, n_c].

    SCAN's stacked cross attention (the code's model.py ``xattn_score_t2i`` / ``xattn_score_i2t``).
    Inputs are the
    encoders' per-region and per-word vectors, unit-norm. Pairs are scored in blocks of at most
    `pair_chunk` (images × captions), each block one batched tensor program
    (`stacked_cross_attention`), so evaluation cost is FLOPs, not one kernel launch per caption
    as in the reference's sharded loop (``shard_xattn_*``). Each pair's score depends on that pair only, never
    on the block it was computed in or on padding. `score_pairs` scores an explicit pair list
    (re-rank evaluation, `harness.capabilities.ScoresPairs`) with the same math, pair p's sets
    gathered side by side (`aligned_cross_attention`).

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
            (benchmarks/test_scan_scoring.py). `score_pairs` also holds each pair's gathered
            sets, (C + Q)·D floats, so it gathers fewer pairs at a time, as many as fit in a
            dense block's memory (36 regions, 12 words, D = 1024: 820 pairs, 0.17 GB).
        checkpoint_blocks: with gradients, recompute each block in the backward pass instead of
            keeping its intermediates (`baselines.heads.blocks.call_block`), so a training step
            holds one block's at a time, not batch² × C × Q; forward values are unchanged. A call
            of one block (the recipe's 128 × 128 batch at the default pair_chunk) runs plainly.
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
        checkpoint_blocks: bool = True,
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
        self.checkpoint_blocks = checkpoint_blocks

    def forward(self, images: VectorSets, texts: VectorSets) -> torch.Tensor:
        """images: regions [n_i, R, D] + lengths; texts: words [n_c, L, D] + lengths -> [n_i, n_c]."""
        _check(images, texts)
        checkpointed = needs_checkpoint(self.checkpoint_blocks, self, images, texts)
        with torch.autocast(images.vectors.device.type, enabled=False):
            return score_blockwise(images, texts, self.pair_chunk, self._score_block, checkpointed=checkpointed)

    def score_pairs(
        self, images: VectorSets, texts: VectorSets, image_index: torch.Tensor, caption_index: torch.Tensor
    ) -> torch.Tensor:
        """Scores of explicit pairs: entry p = s(images[image_index[p]], texts[caption_index[p]]).

        images [n_i, R, D], texts [n_c, L, D]; image_index, caption_index int64 [P] -> float [P],
        those entries of `forward(images, texts)` up to float32 rounding. The pairs are gathered
        a chunk at a time (at most `pair_chunk`, fewer when the gathered sets would outweigh a
        dense block: `_pairs_per_gather`), each chunk one `aligned_cross_attention`. The
        context sets' Gram matrices and the query vectors' squared norms are computed once per
        set, not per pair: a re-rank list repeats each query k times, and per pair the Gram
        matrices (C·C·D) would cost three times the affinities (C·Q·D) for t-i.
        """
        _check(images, texts)
        if image_index.shape != caption_index.shape or image_index.dim() != 1:
            raise UserError(
                f"scan-attention: score_pairs takes two index vectors of one length (got {tuple(image_index.shape)} "
                f"and {tuple(caption_index.shape)})"
            )
        if len(image_index) == 0:
            dtype = torch.promote_types(torch.promote_types(images.vectors.dtype, texts.vectors.dtype), torch.float32)
            return images.vectors.new_zeros(0, dtype=dtype)
        chunk = self._pairs_per_gather(images, texts)
        checkpointed = needs_checkpoint(self.checkpoint_blocks, self, images, texts)
        t2i = self.direction == "t2i"
        contexts, queries = (images, texts) if t2i else (texts, images)
        with torch.autocast(images.vectors.device.type, enabled=False):
            grams, sq_norms = _set_statistics(contexts, queries, chunk)
            # padding already zero: gathered copies need no zeroing (with gradients they keep the
            # masking, which stops gradients into the padding)
            zeroed = tuple(
                not (torch.is_grad_enabled() and sets.vectors.requires_grad) and padding_is_zero(sets, chunk)
                for sets in (contexts, queries)
            )

            def aligned(image_rows: torch.Tensor, caption_rows: torch.Tensor) -> torch.Tensor:
                context_rows, query_rows = (image_rows, caption_rows) if t2i else (caption_rows, image_rows)
                return self._score_aligned(contexts, queries, grams, sq_norms, context_rows, query_rows, zeroed)

            def grouped(by: str, query_rows: torch.Tensor, candidate_rows: torch.Tensor) -> torch.Tensor:
                if (by == "image") == t2i:  # each group is one context set with its candidate query sets
                    return self._score_context_grouped(contexts, queries, grams, sq_norms, query_rows, candidate_rows, zeroed)
                return self._score_query_grouped(contexts, queries, grams, sq_norms, candidate_rows, query_rows, zeroed)

            grouped_chunk = {
                "image": self._pairs_per_group(texts.vectors.shape[1], images, texts),
                "caption": self._pairs_per_group(images.vectors.shape[1], images, texts),
            }
            set_cost = {"image": images.vectors[0].numel(), "caption": texts.vectors[0].numel()}
            return score_grouped(
                grouped, aligned, image_index, caption_index, chunk, grouped_chunk, set_cost, checkpointed=checkpointed
            )

    def _pairs_per_group(self, candidate_width: int, images: VectorSets, texts: VectorSets) -> int:
        """Pairs per grouped `score_pairs` block: as `_pairs_per_gather`, but only the candidates'
        sets (candidate_width·D floats per pair) are gathered per pair."""
        n_regions, n_words, dim = images.vectors.shape[1], texts.vectors.shape[1], images.vectors.shape[2]
        block = 6 * n_regions * n_words
        pairs = self.pair_chunk * block // (candidate_width * dim + block)
        return max(1, min(self.pair_chunk, pairs, _gather_limit(candidate_width * dim, images.vectors.device)))

    def _pairs_per_gather(self, images: VectorSets, texts: VectorSets) -> int:
        """Pairs per `score_pairs` chunk: `pair_chunk`, or fewer so that a chunk, (R + L)·D
        gathered floats plus six [R, L] tensors per pair, takes no more than a dense block's six
        [pair_chunk, R, L] tensors (R, L, D = 36, 12, 1024: 820 pairs and 0.17 GB, where
        16,384 pairs would gather 3.2 GB)."""
        n_regions, n_words, dim = images.vectors.shape[1], texts.vectors.shape[1], images.vectors.shape[2]
        block = 6 * n_regions * n_words
        pairs = self.pair_chunk * block // ((n_regions + n_words) * dim + block)
        return max(1, min(self.pair_chunk, pairs, _gather_limit((n_regions + n_words) * dim, images.vectors.device)))

    def _options(self) -> dict:
        return dict(lambda_softmax=self.lambda_softmax, aggregation=self.aggregation, lambda_lse=self.lambda_lse)

    def _score_block(self, images: VectorSets, texts: VectorSets) -> torch.Tensor:
        """One block of zero-padded sets, [bi, R, D] × [bc, L, D] -> [bi, bc]."""
        regions, region_mask = images.vectors, images.mask()
        words, word_mask = texts.vectors, texts.mask()
        if self.direction == "t2i":
            return stacked_cross_attention(regions, region_mask, words, word_mask, **self._options())
        return stacked_cross_attention(words, word_mask, regions, region_mask, **self._options()).T

    def _score_aligned(
        self,
        contexts: VectorSets,
        queries: VectorSets,
        grams: torch.Tensor,
        sq_norms: torch.Tensor,
        context_index: torch.Tensor,
        query_index: torch.Tensor,
        zeroed: tuple[bool, bool] = (False, False),
    ) -> torch.Tensor:
        """Pairs (contexts[context_index[p]], queries[query_index[p]]) -> [P].

        contexts [n, C, D] with their Gram matrices grams [n, C, C]; queries [m, Q, D] with
        their squared norms sq_norms [m, Q] (`_set_statistics`).
        """
        pair_contexts, pair_queries = gather(contexts, context_index, zeroed[0]), gather(queries, query_index, zeroed[1])
        n_contexts, n_queries = pair_contexts.vectors.shape[1], pair_queries.vectors.shape[1]
        return aligned_cross_attention(
            pair_contexts.vectors,
            pair_contexts.mask(),
            pair_queries.vectors,
            pair_queries.mask(),
            context_gram=grams[context_index, :n_contexts, :n_contexts],
            query_sq_norm=sq_norms[query_index, :n_queries],
            **self._options(),
        )

    def _score_context_grouped(
        self,
        contexts: VectorSets,
        queries: VectorSets,
        grams: torch.Tensor,
        sq_norms: torch.Tensor,
        context_rows: torch.Tensor,
        query_rows: torch.Tensor,
        zeroed: tuple[bool, bool],
    ) -> torch.Tensor:
        """Context set contexts[context_rows[o]] with queries[query_rows[o, p]]: [O] × [O, P] -> [O, P]."""
        n_groups, n_candidates = query_rows.shape
        group_contexts = gather(contexts, context_rows, zeroed[0])
        pair_queries = gather(queries, query_rows.flatten(), zeroed[1])
        n_contexts, n_queries, dim = group_contexts.vectors.shape[1], pair_queries.vectors.shape[1], contexts.vectors.shape[2]
        return context_grouped_cross_attention(
            group_contexts.vectors,
            group_contexts.mask(),
            pair_queries.vectors.view(n_groups, n_candidates, n_queries, dim),
            pair_queries.mask().view(n_groups, n_candidates, n_queries),
            context_gram=grams[context_rows, :n_contexts, :n_contexts],
            query_sq_norm=sq_norms[query_rows, :n_queries],
            **self._options(),
        )

    def _score_query_grouped(
        self,
        contexts: VectorSets,
        queries: VectorSets,
        grams: torch.Tensor,
        sq_norms: torch.Tensor,
        context_rows: torch.Tensor,
        query_rows: torch.Tensor,
        zeroed: tuple[bool, bool],
    ) -> torch.Tensor:
        """Query set queries[query_rows[o]] with contexts[context_rows[o, p]]: [O, P] × [O] -> [O, P]."""
        n_groups, n_candidates = context_rows.shape
        pair_contexts = gather(contexts, context_rows.flatten(), zeroed[0])
        group_queries = gather(queries, query_rows, zeroed[1])
        n_contexts, n_queries, dim = pair_contexts.vectors.shape[1], group_queries.vectors.shape[1], contexts.vectors.shape[2]
        return query_grouped_cross_attention(
            pair_contexts.vectors.view(n_groups, n_candidates, n_contexts, dim),
            pair_contexts.mask().view(n_groups, n_candidates, n_contexts),
            group_queries.vectors,
            group_queries.mask(),
            context_gram=grams[context_rows, :n_contexts, :n_contexts],
            query_sq_norm=sq_norms[query_rows, :n_queries],
            **self._options(),
        )


def _set_statistics(contexts: VectorSets, queries: VectorSets, slice_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram matrices [n, C, C] of the zero-padded context sets and squared norms [m, Q] of the
    zero-padded query vectors, `slice_size` sets at a time (a whole split is never copied)."""

    def zero_padded(sets: VectorSets, start: int) -> torch.Tensor:
        rows = slice(start, start + slice_size)  # full width, so that the slices concatenate
        return zero_padding(VectorSets(sets.vectors[rows], sets.lengths[rows])).vectors

    grams = []
    for start in range(0, len(contexts), slice_size):
        vectors = zero_padded(contexts, start)
        grams.append(vectors @ vectors.transpose(1, 2))
    sq_norms = [zero_padded(queries, start).square().sum(-1) for start in range(0, len(queries), slice_size)]
    return torch.cat(grams), torch.cat(sq_norms)


def _check(images: object, texts: object) -> None:
    """A one-line error for global embeddings, which this head cannot read."""
    if not (isinstance(images, VectorSets) and isinstance(texts, VectorSets)):
        raise UserError(
            "scan-attention scores local embeddings (VectorSets of regions and words); "
            "pair it with local encoders such as scan-region and scan-bigru"
        )

"""Blocks of pairs for the cross-attention heads (`scan-attention`, `ascl-fusion`).

Both heads score pairs in blocks of at most `pair_chunk`, each block one batched tensor program
whose intermediates grow with pairs × set sizes ([pairs, C, Q] for SCAN, [pairs, H, R, L] for
AsCL). The loops here keep a call at one block's memory:

- Padding is zeroed (and vectors promoted to float32) per block, never for a whole call, since
  `score_pairs` and AsCL's `score_with_pairing` get a whole split: `score_blockwise` zeroes each
  caption block once, not once per image block (it was a fresh copy of every caption block
  for every image block, a quarter of a block's memory traffic); `gather` zeroes a chunk's
  gathered rows in place.
- With gradients, each block runs under `torch.utils.checkpoint` (`call_block`): autograd keeps
  only the block's inputs and recomputes its intermediates in the backward pass, one block at a
  time, where it used to keep every block's (batch² × set sizes). Forward values are unchanged;
  the cost is a second forward of each block. A call of one block is run plainly: its backward
  would hold the same intermediates anyway (SCAN's 128 × 128 batch is one 16,384-pair block).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from harness.embeddings import VectorSets


def zero_padding(sets: VectorSets) -> VectorSets:
    """`sets` with vectors [B, N, D] at float32 or wider and exactly zero past each length (a
    copy; lengths and summary unchanged). Zeroing makes the padding harmless even if an encoder
    left NaNs there (an l2norm of a zero row in float16)."""
    mask = sets.mask()
    vectors = sets.vectors.to(torch.promote_types(sets.vectors.dtype, torch.float32))
    return VectorSets(vectors.masked_fill(~mask[..., None], 0), sets.lengths, sets.summary)


def gather(sets: VectorSets, index: torch.Tensor) -> VectorSets:
    """``zero_padding(sets[index])`` for an index tensor [P] -> [P, N', D], N' the longest
    gathered set, with one copy instead of two: indexing by a tensor copies the rows, so their
    padding can be zeroed in place."""
    picked = sets[index]
    vectors = picked.vectors.to(torch.promote_types(picked.vectors.dtype, torch.float32))
    vectors.masked_fill_(~picked.mask()[..., None], 0)
    return VectorSets(vectors, picked.lengths, picked.summary)


def needs_checkpoint(enabled: bool, module: nn.Module, *sets: VectorSets) -> bool:
    """Whether a call's blocks are worth checkpointing: `enabled` (the head's option), grad mode
    on, and some vector, summary or parameter of `module` requiring grad (otherwise autograd
    keeps nothing and there is nothing to recompute)."""
    if not (enabled and torch.is_grad_enabled()):
        return False
    tensors = [t for s in sets for t in (s.vectors, s.summary) if t is not None]
    return any(t.requires_grad for t in tensors) or any(p.requires_grad for p in module.parameters())


def call_block(block: Callable[..., torch.Tensor], *args: object, recompute: bool) -> torch.Tensor:
    """``block(*args)``; with `recompute`, checkpointed (non-reentrant, so the arguments may be
    any objects holding tensors, e.g. `VectorSets`, and parameters used inside get their
    gradients). The blocks draw no random numbers, so the RNG state is not saved."""
    if not recompute:
        return block(*args)
    return checkpoint(block, *args, use_reentrant=False, preserve_rng_state=False)


def score_blockwise(
    images: VectorSets,
    texts: VectorSets,
    pair_chunk: int,
    score: Callable[[VectorSets, VectorSets], torch.Tensor],
    *,
    checkpointed: bool,
) -> torch.Tensor:
    """[n_i, n_c]: every image against every caption, in blocks of at most `pair_chunk` pairs.

    A block is min(n_c, pair_chunk) captions × as many images as fill it; ``score(image block,
    caption block)`` gets both zero-padded (`zero_padding`) and returns [bi, bc]. Caption blocks
    are the outer loop so that each is zeroed once; blocks are independent, so the order
    changes no value. `checkpointed`: `needs_checkpoint` for this call.
    """
    caption_block = min(len(texts), pair_chunk)
    image_block = max(1, pair_chunk // caption_block)
    recompute = checkpointed and math.ceil(len(images) / image_block) * math.ceil(len(texts) / caption_block) > 1
    columns = []
    for j in range(0, len(texts), caption_block):
        block_texts = zero_padding(texts[j : j + caption_block])
        columns.append(
            [
                call_block(score, zero_padding(images[i : i + image_block]), block_texts, recompute=recompute)
                for i in range(0, len(images), image_block)
            ]
        )
    return torch.cat([torch.cat(row, dim=1) for row in zip(*columns)], dim=0)


def score_in_chunks(
    block: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    image_index: torch.Tensor,
    caption_index: torch.Tensor,
    chunk: int,
    *,
    checkpointed: bool,
) -> torch.Tensor:
    """``block(image_index[rows], caption_index[rows])`` for consecutive chunks of `chunk` pairs,
    concatenated: [P, ...] for P ≥ 1 pairs. The block gathers its own rows (`gather`), inside
    the checkpoint, so autograd keeps the indices rather than the gathered copies."""
    recompute = checkpointed and len(image_index) > chunk
    return torch.cat(
        [
            call_block(block, image_index[start : start + chunk], caption_index[start : start + chunk], recompute=recompute)
            for start in range(0, len(image_index), chunk)
        ]
    )

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
from functools import partial
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


def gather(sets: VectorSets, index: torch.Tensor, zeroed: bool = False) -> VectorSets:
    """``zero_padding(sets[index])`` for an index tensor [P] -> [P, N', D], N' the longest
    gathered set, with one copy instead of two: indexing by a tensor copies the rows, so their
    padding can be zeroed in place. `zeroed`: `sets` is already zero past its lengths
    (`padding_is_zero`), so the copy needs no zeroing."""
    picked = sets[index]
    vectors = picked.vectors.to(torch.promote_types(picked.vectors.dtype, torch.float32))
    if not zeroed:
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


GroupedBlock = Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]
"""``block(by, group_rows [O], candidate_rows [O, P]) -> [O, P]``: set o of the grouped side (an
image if `by` is ``"image"``, else a caption) against its P candidates of the other side."""

GROUP_PIECE = 128
"""Most candidates of one set per grouped block row (a re-rank list's k is typically 128)."""

PAD_STEP = 16
"""Grouped block rows of 16 pairs or more are padded to a multiple of 16 pairs, so that groups of
uneven sizes share few block widths."""


def padding_is_zero(sets: VectorSets, slice_size: int) -> bool:
    """Whether `sets` is exactly zero past every length (no NaN there either), read `slice_size`
    sets at a time: then a gathered copy needs no zeroing (`gather`'s `zeroed`)."""
    if bool((sets.lengths == sets.vectors.shape[1]).all()):
        return True
    for start in range(0, len(sets), slice_size):
        rows = slice(start, start + slice_size)
        vectors, lengths = sets.vectors[rows], sets.lengths[rows]
        padding = torch.arange(vectors.shape[1], device=vectors.device)[None, :] >= lengths[:, None]
        if not bool((vectors[padding] == 0).all()):
            return False
    return True


def equal_runs(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(starts, lengths), int64 on `index`'s device: the runs of equal consecutive entries of [P ≥ 1]."""
    starts = torch.cat([index.new_zeros(1), torch.nonzero(index[1:] != index[:-1]).flatten() + 1])
    ends = torch.cat([starts[1:], starts.new_full((1,), len(index))])
    return starts, ends - starts


def score_grouped(
    grouped: GroupedBlock,
    aligned: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    image_index: torch.Tensor,
    caption_index: torch.Tensor,
    chunk: int,
    grouped_chunk: dict[str, int],
    set_cost: dict[str, int],
    *,
    checkpointed: bool,
) -> torch.Tensor:
    """[P ≥ 1] scores of an explicit pair list, scored in groups of pairs that share a set.

    A pair list (re-rank: each image or caption query with its k candidates) names each set many
    times; gathering the sets of every pair side by side copies each one as often. Here the pairs
    are grouped by the image or by the caption, whichever gathers fewer floats (``set_cost[side]``
    = floats of one set of that side: P·cost(other) + groups·cost(side)). The pairs are stably
    sorted by that side, each group cut into pieces of at most `GROUP_PIECE` pairs, and pieces are
    scored as blocks of O sets × L candidates (``grouped(by, sets [O], candidates [O, L])``, O·L ≤
    ``grouped_chunk[by]``): a shorter piece padded to a multiple of `PAD_STEP` (if not shorter) by repeating its last pair (those scores are dropped). A set is gathered once per piece, not
    once per pair. Pieces of one pair go to ``aligned(image_rows, caption_rows)`` in chunks of
    `chunk`, as does a list where no set repeats. Every pair's score is its own, so the grouping
    changes no value. Blocks are checkpointed when `checkpointed` and there is more than one.
    """
    n_pairs = len(image_index)
    index = {"image": image_index, "caption": caption_index}
    other = {"image": "caption", "caption": "image"}
    n_sets = {side: len(torch.unique(index[side])) for side in index}
    by = min(index, key=lambda side: n_pairs * set_cost[other[side]] + n_sets[side] * set_cost[side])
    if n_sets[by] == n_pairs:  # no set repeats
        return score_in_chunks(aligned, image_index, caption_index, chunk, checkpointed=checkpointed)
    order = torch.sort(index[by], stable=True).indices
    groups, candidates = index[by][order], index[other[by]][order]
    starts, lengths = equal_runs(groups)
    limit = max(1, grouped_chunk[by])
    piece = min(GROUP_PIECE, limit)
    # cut the runs into pieces of `piece` pairs and a rest
    pieces = torch.div(lengths + piece - 1, piece, rounding_mode="floor")
    run_of_piece = torch.repeat_interleave(torch.arange(len(starts), device=starts.device), pieces)
    offset = (torch.arange(len(run_of_piece), device=starts.device) - (torch.cumsum(pieces, 0) - pieces)[run_of_piece]) * piece
    piece_starts = starts[run_of_piece] + offset
    piece_lengths = torch.minimum(lengths[run_of_piece] - offset, torch.full_like(offset, piece))
    # block widths: a length under PAD_STEP as it is, a longer one rounded up to a multiple of it
    rounded = torch.div(piece_lengths + PAD_STEP - 1, PAD_STEP, rounding_mode="floor") * PAD_STEP
    padded = torch.where(piece_lengths < PAD_STEP, piece_lengths, rounded).clamp(max=piece)

    calls: list[tuple[torch.Tensor, torch.Tensor | None, Callable[[], torch.Tensor]]] = []  # (sorted rows, kept, scores)
    singles = piece_starts[piece_lengths == 1]
    for start in range(0, len(singles), chunk):
        rows = singles[start : start + chunk]
        pairs = order[rows]
        calls.append((rows, None, partial(aligned, image_index[pairs], caption_index[pairs])))
    for width in sorted(set(padded[piece_lengths > 1].tolist())):
        selected = (padded == width) & (piece_lengths > 1)
        block_starts, block_lengths = piece_starts[selected], piece_lengths[selected]
        per_block = max(1, limit // width)
        for start in range(0, len(block_starts), per_block):
            first, length = block_starts[start : start + per_block, None], block_lengths[start : start + per_block, None]
            steps = torch.arange(width, device=starts.device)[None, :]
            rows = first + torch.minimum(steps, length - 1)  # [O, width], the padding repeats the last pair
            calls.append((rows[steps < length], steps < length, partial(grouped, by, groups[first[:, 0]], candidates[rows])))
    recompute = checkpointed and len(calls) > 1
    scores = []
    for _, kept, score in calls:
        values = call_block(score, recompute=recompute)
        scores.append(values if kept is None else values[kept.to(values.device)])
    scores = torch.cat(scores)
    sorted_rows = torch.cat([rows for rows, _, _ in calls]).to(scores.device)
    position = torch.empty(n_pairs, dtype=torch.long, device=scores.device)
    position[order.to(scores.device)[sorted_rows]] = torch.arange(n_pairs, device=scores.device)
    return scores[position]

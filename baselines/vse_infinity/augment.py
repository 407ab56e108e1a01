"""VSE∞'s size augmentations, applied at train time only: drop regions, mask / replace / delete words.

GPO's weights depend on the set size N; training on sets of varying size makes the learned pooling
hold up across sizes and acts as feature dropout (VSE∞ paper, size augmentation;
docs/methods/vse-infinity.md). The reference does this in its Dataset, before collate; here the
encoders call these functions in `forward` when ``self.training``, on the already batched tensors,
so ``prepare`` and evaluation stay deterministic. Random numbers come from torch's global generator
(seeded per job by the trainer).
"""

from __future__ import annotations

import torch

from harness.embeddings import VectorSets


def compact(values: torch.Tensor, keep: torch.Tensor, fill: float = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's kept entries to the front, in their order, and pad the rest with `fill`.

    Args:
        values: [B, L] (token ids) or [B, L, D] (vectors).
        keep: bool [B, L], at least one True per row.
        fill: value of the padded slots.

    Returns:
        (values [B, L', ...] with L' the most entries kept in a row, lengths int64 [B]).
    """
    lengths = keep.sum(dim=1)
    width = int(lengths.max())
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width]
    padded = torch.arange(width, device=keep.device)[None, :] >= lengths[:, None]
    if values.dim() == 3:
        order, padded = order[..., None].expand(-1, -1, values.shape[-1]), padded[..., None]
    return values.gather(1, order).masked_fill(padded, fill), lengths


def drop_regions(regions: torch.Tensor, drop_prob: float) -> VectorSets:
    """Region-set augmentation: drop each region independently with `drop_prob`.

    regions: [B, R, D], every set full -> `VectorSets` [B, R', D] with lengths [B], the kept
    regions in their original order. A set that would lose every region keeps one, drawn
    uniformly (the reference can return an empty set; with 36 regions at 0.2 it never does).
    """
    batch, count = regions.shape[:2]
    keep = torch.rand(batch, count, device=regions.device) >= drop_prob
    emptied = (~keep.any(dim=1)).nonzero().squeeze(1)
    keep[emptied, torch.randint(count, emptied.shape, device=regions.device)] = True
    vectors, lengths = compact(regions, keep)
    return VectorSets(vectors, lengths)


def augment_tokens(
    ids: torch.Tensor,
    lengths: torch.Tensor,
    words: torch.Tensor,
    *,
    select_prob: float,
    mask_id: int,
    vocab_size: int,
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Text size augmentation: each word is selected with `select_prob`; a selected word's
    tokens are all masked (50%), all replaced by random tokens (10%), or all deleted (40%).

    Net, at 0.2: 10% of words masked, 2% randomised, 8% deleted. As in the reference, one uniform
    draw u per word decides both (u < p selects, u / p picks the action), and each token of a
    randomised word gets its own random id from the whole table (specials included).

    Args:
        ids: int64 [B, L] token ids, padded with `pad_id`.
        lengths: int64 [B], real tokens per caption.
        words: int64 [B, L], the word each token belongs to (0-based within its caption, so
            word pieces of one word share a number); −1 marks tokens never augmented (padding,
            and [CLS]/[SEP], which the BERT branch adds after augmenting).
        select_prob: p in (0, 1].
        mask_id: id written for a masked token.
        vocab_size: random ids are drawn from [0, vocab_size).
        pad_id: id of the padding after deletion.

    Returns:
        (ids [B, L'], lengths [B]); a caption whose every token was deleted keeps its first.
    """
    draw = torch.rand(ids.shape, device=ids.device).gather(1, words.clamp(min=0))  # u per word, per token
    selected = (words >= 0) & (draw < select_prob)
    action = draw / select_prob
    ids = ids.masked_fill(selected & (action < 0.5), mask_id)
    randomised = selected & (action >= 0.5) & (action < 0.6)
    ids = torch.where(randomised, torch.randint_like(ids, vocab_size), ids)
    positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
    keep = (positions < lengths[:, None]) & ~(selected & (action >= 0.6))
    keep[:, 0] |= ~keep.any(dim=1)
    return compact(ids, keep, fill=pad_id)

"""Set pooling for VSE∞: the Generalized Pooling Operator (GPO) and its fixed special cases.

VSE∞ paper (Chen et al., CVPR 2021) §3.2–3.3; docs/methods/vse-infinity.md, GPO. An encoder turns
an image into a set of region vectors and a caption into a set of word vectors; the pooling
operator reduces a set [N, D] to one vector [D]. GPO learns *how* to pool: it sorts every channel
over the set and takes a weighted sum of the sorted values, with weights θ_k = g(k, N) that depend
only on the rank k and the set size N. θ = 1/N for every k is average pooling, θ = one-hot at k = 0
is max pooling, and K-max pooling lies in between; GPO picks its point in that family by gradient
descent.

All pooling modules take zero-padded sets, ``vectors`` [B, N_max, D] with ``lengths`` int64 [B]
(each ≥ 1), and return [B, D]. Values at padded positions never reach the output.

Deviations from the reference code (both give the same numbers in every practical case):
- Padded slots are filled with −inf rather than −10000 before the sort and before the softmax, so
  a real value below −10000 cannot sort behind the padding.
- θ is computed once per distinct set size in the batch and shared by the sets of that size
  (θ depends on (k, N) only, so this is the same function, run on fewer sequences).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from harness.errors import UserError

PoolingKind = Literal["gpo", "mean", "max"]
"""The ``pooling`` option of the VSE∞ encoders (paper Table 1 compares these aggregators)."""


def real_positions(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """bool [B, width], True at positions k < lengths[b]."""
    positions = torch.arange(width, device=lengths.device)
    return positions[None, :] < lengths[:, None]


@lru_cache(maxsize=None)
def positional_encoding(length: int, dim: int) -> torch.Tensor:
    """Transformer sinusoid for 0-based positions k = 0..length−1: float32 [length, dim] (CPU).

    p_k[2j] = sin(k · 10000^(−2j/dim)), p_k[2j+1] = cos(k · 10000^(−2j/dim)). Cached per length,
    as the reference caches its tables; callers must not modify the returned tensor.
    """
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


def gpo_pool(vectors: torch.Tensor, lengths: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_k θ_k · max_k(set), per channel: the GPO output for given weights (sort, then weigh).

    Args:
        vectors: [B, N, D] zero-padded sets.
        lengths: int64 [B], real vectors per set.
        weights: θ [B, N], zero at padded positions.

    Returns:
        [B, D]. Each channel is sorted over the set independently (descending), so the result
        does not depend on the order of the set.
    """
    padded = ~real_positions(lengths, vectors.shape[1])[..., None]
    ordered = vectors.masked_fill(padded, float("-inf")).sort(dim=1, descending=True).values
    return (ordered.masked_fill(padded, 0) * weights[..., None]).sum(dim=1)


class GPO(nn.Module):
    """Generalized Pooling Operator (VSE∞ paper §3.2–3.3): learned rank weights over sorted values.

    θ_k = softmax_k(wᵀ h_k / temperature), where h_k is the output at step k of a one-layer
    BiGRU run over the positional encodings p_0..p_{N−1} (directions averaged). The GRU input
    depends only on k and the backward direction sees where the set ends, so θ is a function of
    (k, N) alone: a set's size decides how it is pooled, never its values. 12,704 parameters at
    d_pe = d_hidden = 32 (the VSE∞ paper quotes ≈0.1M; this architecture has 12.7k).

    Args:
        d_pe: positional-encoding size (paper: 32).
        d_hidden: BiGRU hidden size per direction (paper: 32).
        temperature: softmax temperature over positions (paper: 0.1).
    """

    def __init__(self, d_pe: int = 32, d_hidden: int = 32, temperature: float = 0.1) -> None:
        super().__init__()
        self.d_pe = d_pe
        self.d_hidden = d_hidden
        self.temperature = temperature
        self.gru = nn.GRU(d_pe, d_hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(d_hidden, 1, bias=False)

    def pool_weights(self, lengths: torch.Tensor) -> torch.Tensor:
        """θ for sets of the given sizes: lengths int64 [B] -> [B, max(lengths)].

        Each row sums to 1 over its first lengths[b] positions and is exactly 0 beyond.
        """
        sizes, size_of_set = torch.unique(lengths, return_inverse=True)
        width = int(sizes.max())
        table = positional_encoding(width, self.d_pe).to(self.linear.weight.device)
        packed = pack_padded_sequence(
            table.expand(len(sizes), width, self.d_pe), sizes.cpu(), batch_first=True, enforce_sorted=False
        )
        steps, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=width)
        steps = (steps[..., : self.d_hidden] + steps[..., self.d_hidden :]) / 2  # [U, width, d_hidden]
        scores = self.linear(steps).squeeze(-1)  # [U, width]
        scores = scores.masked_fill(~real_positions(sizes, width), float("-inf"))
        return torch.softmax(scores / self.temperature, dim=1)[size_of_set]

    def forward(self, vectors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """vectors [B, N, D] zero-padded, lengths int64 [B] -> pooled [B, D]."""
        width = int(lengths.max())
        return gpo_pool(vectors[:, :width], lengths, self.pool_weights(lengths))


class AvgPool(nn.Module):
    """Mean over each set's real vectors: [B, N, D], lengths [B] -> [B, D] (the VSE++ aggregator)."""

    def forward(self, vectors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        padded = ~real_positions(lengths, vectors.shape[1])[..., None]
        return vectors.masked_fill(padded, 0).sum(dim=1) / lengths[:, None].to(vectors.dtype)


class MaxPool(nn.Module):
    """Per-channel max over each set's real vectors: [B, N, D], lengths [B] -> [B, D].

    Paper Table 1: the best fixed aggregator for region features.
    """

    def forward(self, vectors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        padded = ~real_positions(lengths, vectors.shape[1])[..., None]
        return vectors.masked_fill(padded, float("-inf")).max(dim=1).values


POOLINGS: dict[str, type[nn.Module]] = {"gpo": GPO, "mean": AvgPool, "max": MaxPool}


def make_pooling(kind: str) -> nn.Module:
    """A fresh pooling module of the given kind (``gpo``, ``mean`` or ``max``), paper defaults."""
    if kind not in POOLINGS:
        raise UserError(f"unknown pooling {kind!r}; choose one of {', '.join(POOLINGS)}")
    return POOLINGS[kind]()

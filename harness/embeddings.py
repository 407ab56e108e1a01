"""Local embeddings: a batch of variable-size vector sets (regions of an image, words of a caption).

Global methods embed an item as one vector, a plain Tensor [B, D]. Cross-attention methods (SCAN,
AsCL's local branch) keep one vector per region or word, and sets differ in size: `VectorSets`
carries them zero-padded with their lengths. The evaluator batches, slices and moves both kinds
through the helpers here, so a similarity head receives exactly what its encoders produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch


@dataclass(frozen=True)
class VectorSets:
    """Zero-padded vector sets.

    Attributes:
        vectors: [B, N_max, D], rows past each set's length are zero.
        lengths: int64 [B], the number of real vectors in each set (>= 1).
        summary: optional [B, D'] global vector travelling with each set (e.g. AsCL's CNN
            vector beside its regions); sliced and concatenated along with the sets.
    """

    vectors: torch.Tensor
    lengths: torch.Tensor
    summary: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def __getitem__(self, index: slice | torch.Tensor) -> "VectorSets":
        lengths = self.lengths[index]
        width = int(lengths.max()) if len(lengths) else 0
        summary = None if self.summary is None else self.summary[index]
        return VectorSets(self.vectors[index][:, :width], lengths, summary)

    def to(self, device: torch.device | str) -> "VectorSets":
        summary = None if self.summary is None else self.summary.to(device)
        return VectorSets(self.vectors.to(device), self.lengths.to(device), summary)

    def float(self) -> "VectorSets":
        return VectorSets(self.vectors.float(), self.lengths, None if self.summary is None else self.summary.float())

    def mask(self) -> torch.Tensor:
        """bool [B, N_max], True for real vectors."""
        positions = torch.arange(self.vectors.shape[1], device=self.vectors.device)
        return positions[None, :] < self.lengths.to(self.vectors.device)[:, None]

    def mean(self) -> torch.Tensor:
        """[B, D]: each set's mean over its real vectors (padding is zero, so a sum / length)."""
        return self.vectors.sum(dim=1) / self.lengths.to(self.vectors.device, self.vectors.dtype)[:, None]


Embeddings = Union[torch.Tensor, VectorSets]
"""What an encoder returns: global vectors [B, D] or local `VectorSets`."""


def concat(parts: Sequence[Embeddings]) -> Embeddings:
    """Concatenate encoder outputs along the batch axis; vector sets are re-padded to the widest."""
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(list(parts))
    width = max(part.vectors.shape[1] for part in parts)
    vectors = torch.cat([torch.nn.functional.pad(p.vectors, (0, 0, 0, width - p.vectors.shape[1])) for p in parts])
    summary = None if parts[0].summary is None else torch.cat([p.summary for p in parts])
    return VectorSets(vectors, torch.cat([p.lengths for p in parts]), summary)

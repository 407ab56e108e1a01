"""Generated samples in a training step (the AsCL paper, §2): positives from caption text, negatives from
caption embeddings, each drawn from a configurable mixture of strategies.

The generators themselves are plugin components (`register_sample_generators`); this module
only decides which generator serves which caption, and keeps every draw on the job's seeded
random streams so a run is reproducible.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from harness.embeddings import Embeddings, VectorSets


@dataclass
class GeneratedSamples:
    """The built generators of a job and how they mix.

    Attributes:
        positives: text-level generators (T⁺), one drawn per caption or per batch.
        negatives: feature-level generators, one drawn per batch or per caption.
        positive_weight: w in L = (1 − w)·L(I, T) + w·L(I, T⁺).
        positive_mix, negative_mix: ``per-caption`` or ``per-batch``.
        frozen_text: the job's cached text backbone; generated captions bypass its disk cache.
        seed: seeds the Python and torch random streams of the draws.
    """

    positives: list[Any]
    negatives: list[Any]
    positive_weight: float = 0.5
    positive_mix: str = "per-caption"
    negative_mix: str = "per-batch"
    frozen_text: Any = None
    seed: int = 0
    rng: random.Random = field(init=False)
    torch_rng: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.torch_rng = torch.Generator().manual_seed(self.seed)

    def positive_captions(self, captions: Sequence[str], siblings: Sequence[Sequence[str]]) -> list[str]:
        """One generated positive per caption (`siblings[k]`: all captions of caption k's image)."""
        if self.positive_mix == "per-batch":
            return list(self.rng.choice(self.positives)(captions, siblings, self.rng))
        choice = [self.rng.randrange(len(self.positives)) for _ in captions]
        out = list(captions)
        for index, generator in enumerate(self.positives):
            mine = [k for k, c in enumerate(choice) if c == index]
            if mine:
                made = generator([captions[k] for k in mine], [siblings[k] for k in mine], self.rng)
                for k, caption in zip(mine, made):
                    out[k] = caption
        return out

    def encoding_context(self) -> Any:
        """Where generated captions are encoded: outside the on-disk feature cache."""
        return self.frozen_text.uncached() if self.frozen_text is not None else nullcontext()

    def negative_embeddings(self, texts: Embeddings) -> Embeddings:
        """One generated negative per caption embedding, same kind and shape as `texts`."""
        if self.negative_mix == "per-batch":
            return self.negatives[int(torch.randint(len(self.negatives), (1,), generator=self.torch_rng))](texts, self.torch_rng)
        made = [generator(texts, self.torch_rng) for generator in self.negatives]
        choice = torch.randint(len(made), (len(texts),), generator=self.torch_rng)
        return _pick_rows(made, choice)


def _pick_rows(candidates: list[Embeddings], choice: torch.Tensor) -> Embeddings:
    """Row k of candidates[choice[k]]; all candidates have the same kind and shape."""
    rows = torch.arange(len(choice))
    if isinstance(candidates[0], torch.Tensor):
        return torch.stack(candidates)[choice.to(candidates[0].device), rows]
    vectors = torch.stack([c.vectors for c in candidates])[choice, rows]
    summary = None if candidates[0].summary is None else torch.stack([c.summary for c in candidates])[choice, rows]
    return VectorSets(vectors, candidates[0].lengths, summary)

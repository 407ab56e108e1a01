"""Tiny synthetic inputs for contract checks: features, captions, embeddings, score matrices.

Everything is drawn from generators seeded by ``(seed, salt)``, so two calls with the same
arguments return the same data and different salts give different items. The sizes are small on
purpose (a few items, a few dozen dimensions): a check must answer in a second, and a contract
that holds for any size holds for these.

The frozen text backbone is `SyntheticTextBackbone`: a deterministic stand-in for MiniLM (one
vector per word, hashed from the word), so components built from a `BuildContext` never load a
real model here.
"""

from __future__ import annotations

import random
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from harness.embeddings import Embeddings, VectorSets
from harness.interfaces import BuildContext, RetrievalSplit

FEATURE_SHAPES: dict[str, tuple[int, ...]] = {"regions": (6, 24), "pooled": (24,), "logits": (1000,)}
"""Per-image features offered to image encoders: a region set, a pooled vector and ImageNet
logits (the names the frozen EfficientNet-Lite0 backbone produces, at tiny sizes; logits keep
their 1000 classes because the class bridge maps each class to its name)."""

TEXT_DIM = 16
"""Size of the synthetic frozen text features (``tokens`` and ``sentence``)."""

_WORDS = {
    "det": ["a", "the", "one", "two"],
    "adjective": ["small", "large", "red", "white", "old", "young", "wooden", "striped"],
    "noun": ["dog", "cat", "man", "woman", "bus", "table", "kite", "horse", "pizza", "boat"],
    "verb": ["sits", "stands", "runs", "rests", "waits", "plays"],
    "preposition": ["on", "near", "under", "beside", "behind"],
}


def make_caption(rng: random.Random) -> str:
    """``"a small dog sits on the table"``-like captions of 4 to 9 words from a small vocabulary."""
    words = [rng.choice(_WORDS["det"]), rng.choice(_WORDS["adjective"]), rng.choice(_WORDS["noun"])]
    if rng.random() < 0.7:
        words.append(rng.choice(_WORDS["verb"]))
    if rng.random() < 0.7:
        words += [rng.choice(_WORDS["preposition"]), "the", rng.choice(_WORDS["noun"])]
    if rng.random() < 0.3:
        words.append(".")
    return " ".join(words)


class SyntheticTextBackbone:
    """A frozen text backbone without a model (`TextBackbone` and `TextFeatureSource`).

    Outputs for M texts: ``tokens`` float32 [M, L, 16] (one vector per whitespace word between
    ``[CLS]`` and ``[SEP]``, zero past each text's end; a word's vector is hashed from the word, so
    it never depends on the other texts of the call), ``lengths`` int64 [M], ``sentence``
    float32 [M, 16] (unit-norm mean of the tokens).
    """

    fingerprint = "synthetic-text/v1"
    outputs = ("tokens", "lengths", "sentence")

    def __init__(self, dim: int = TEXT_DIM) -> None:
        self.dim = dim

    def _vector(self, word: str) -> np.ndarray:
        return np.random.default_rng(zlib.crc32(word.encode("utf-8"))).standard_normal(self.dim).astype(np.float32)

    def encode_texts(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        token_lists = [["[CLS]", *text.lower().split(), "[SEP]"] for text in texts]
        width = max((len(tokens) for tokens in token_lists), default=0)
        tokens = np.zeros((len(texts), width, self.dim), dtype=np.float32)
        for row, words in enumerate(token_lists):
            tokens[row, : len(words)] = np.stack([self._vector(word) for word in words])
        lengths = np.array([len(words) for words in token_lists], dtype=np.int64)
        sentence = tokens.sum(axis=1) / np.maximum(lengths, 1)[:, None]
        sentence /= np.linalg.norm(sentence, axis=1, keepdims=True) + 1e-8
        return {"tokens": tokens, "lengths": lengths, "sentence": sentence.astype(np.float32)}

    @contextmanager
    def uncached(self) -> Iterator[None]:
        """Nothing is cached here; present because the trainer encodes generated captions inside it."""
        yield


@dataclass
class SyntheticData:
    """Deterministic tiny inputs for every kind of component.

    Attributes:
        seed: base seed; ``salt`` arguments pick different items under the same seed.
        feature_shapes: the image features offered (see `FEATURE_SHAPES`).
        train_captions: how many training captions the build context carries (vocabularies).
    """

    seed: int = 0
    feature_shapes: dict[str, tuple[int, ...]] | None = None
    train_captions: int = 80

    def __post_init__(self) -> None:
        if self.feature_shapes is None:
            self.feature_shapes = dict(FEATURE_SHAPES)
        self.frozen_text = SyntheticTextBackbone()

    def _torch_rng(self, salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + salt)

    # -- what components are built from -----------------------------------------------------

    def context(self, seed: int | None = None) -> BuildContext:
        """The `BuildContext` a factory receives: synthetic feature shapes, training captions and
        the synthetic frozen text backbone."""
        return BuildContext(
            image_feature_shapes=dict(self.feature_shapes),
            train_captions=tuple(self.captions(self.train_captions, salt=-1)),
            frozen_text=self.frozen_text,
            seed=self.seed if seed is None else seed,
        )

    # -- raw inputs ---------------------------------------------------------------------------

    def captions(self, n: int, salt: int = 0) -> list[str]:
        """n captions of 4 to 9 words (with repeats of a small vocabulary)."""
        rng = random.Random(self.seed * 100_003 + salt)
        return [make_caption(rng) for _ in range(n)]

    def image_features(self, n: int, salt: int = 0) -> dict[str, torch.Tensor]:
        """{name: float32 Tensor [n, *shape]} for every offered feature; ``pooled`` is the mean
        of ``regions`` plus noise when both exist, as a CNN's pooled vector is of its grid."""
        rng = self._torch_rng(salt)
        features = {name: torch.randn(n, *shape, generator=rng) for name, shape in self.feature_shapes.items()}
        if "regions" in features and "pooled" in features and features["regions"].shape[-1] == features["pooled"].shape[-1]:
            features["pooled"] = features["regions"].mean(dim=1) + 0.1 * features["pooled"]
        if "logits" in features:
            features["logits"] = 3 * features["logits"]
        return features

    def image_inputs(self, image_encoder: Any, n: int, salt: int = 0) -> dict[str, torch.Tensor]:
        """What `image_encoder` reads of n synthetic images: normalised noise pixels
        ``{"pixels": [n, 3, size, size]}`` for an encoder that reads pixels
        (`harness.capabilities.ReadsPixels`), else `image_features`."""
        from harness.capabilities import READS_PIXELS, claims
        from harness.training.feeds import PIXELS

        if not claims(image_encoder, READS_PIXELS):
            return self.image_features(n, salt)
        size = image_encoder.pixels.size
        return {PIXELS: torch.randn(n, 3, size, size, generator=self._torch_rng(salt))}

    def image_files(self, folder: Path, n: int = 3, salt: int = 0) -> list[Path]:
        """n small RGB noise images of different sizes written as PNG into `folder`."""
        from PIL import Image

        rng = np.random.default_rng(self.seed * 100_003 + salt)
        paths = []
        for index in range(n):
            height, width = 40 + 12 * index, 56 - 6 * index
            pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            path = folder / f"synthetic_{salt}_{index}.png"
            Image.fromarray(pixels).save(path)
            paths.append(path)
        return paths

    def dense_texts(self, n: int, salt: int = 0) -> list[str]:
        """n long descriptions (three captions each, as sentences): what a dense text source gives."""
        captions = self.captions(3 * n, salt=salt + 7)
        return [" ".join(c.rstrip(" .") + "." for c in captions[3 * k : 3 * k + 3]) for k in range(n)]

    def retrieval_split(self, n_images: int, captions_per_image: int = 2, salt: int = 0) -> RetrievalSplit:
        """A split with precomputed features (numpy), `captions_per_image` captions per image."""
        features = {name: value.numpy() for name, value in self.image_features(n_images, salt).items()}
        return RetrievalSplit(
            dataset="synthetic",
            split="train",
            image_ids=tuple(f"synthetic-{salt}-{k}" for k in range(n_images)),
            captions=tuple(self.captions(n_images * captions_per_image, salt)),
            image_of_caption=np.repeat(np.arange(n_images, dtype=np.int64), captions_per_image),
            image_features=features,
        )

    # -- embeddings, for heads and feature-level generators ------------------------------------

    def global_embeddings(self, n: int, dim: int, salt: int = 0) -> torch.Tensor:
        """Unit-norm vectors [n, dim]."""
        vectors = torch.randn(n, dim, generator=self._torch_rng(salt))
        return vectors / vectors.norm(dim=1, keepdim=True)

    def vector_sets(self, n: int, dim: int, salt: int = 0, *, width: int = 6, summary: bool = False) -> VectorSets:
        """`VectorSets` [n, width, dim] of unit-norm rows with uneven lengths in [2, width] (so
        padding is exercised), zero past each length; with `summary`, a global vector [n, dim]."""
        rng = self._torch_rng(salt)
        lengths = torch.randint(2, width + 1, (n,), generator=rng)
        lengths[0] = width  # the widest set is in every batch, so widths agree across calls
        vectors = torch.randn(n, width, dim, generator=rng)
        vectors = vectors / vectors.norm(dim=-1, keepdim=True)
        mask = torch.arange(width)[None, :] < lengths[:, None]
        g = torch.randn(n, dim, generator=rng) if summary else None
        return VectorSets(vectors * mask[..., None], lengths, g)

    # -- score matrices, for losses ------------------------------------------------------------

    def loss_batch(self, batch: int = 6, *, extra_columns: int = 0, positives: float = 0.9, salt: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores [B, B + extra_columns], image_ids int64 [B]) as a trainer hands them to a loss.

        Off-diagonal scores are uniform in [−0.1, 0.1]; the diagonal (the positives) is
        `positives`. Pairs 1 and 2 show the same image (two captions of one image in a batch).
        """
        scores = (torch.rand(batch, batch + extra_columns, generator=self._torch_rng(salt)) - 0.5) / 5
        scores[:, :batch].fill_diagonal_(positives)
        image_ids = torch.arange(batch, dtype=torch.int64) * 3
        if batch > 2:
            image_ids[2] = image_ids[1]
        return scores, image_ids


def as_leaf(embeddings: Embeddings) -> Embeddings:
    """A detached copy whose float tensors require grad, so a check can read their gradients."""
    if isinstance(embeddings, VectorSets):
        summary = None if embeddings.summary is None else embeddings.summary.detach().clone().requires_grad_()
        return VectorSets(embeddings.vectors.detach().clone().requires_grad_(), embeddings.lengths, summary)
    return embeddings.detach().clone().requires_grad_()


def leaves(embeddings: Embeddings) -> list[tuple[str, torch.Tensor]]:
    """The named float tensors of embeddings (for gradients and dtype checks)."""
    if isinstance(embeddings, VectorSets):
        named = [("vectors", embeddings.vectors)]
        if embeddings.summary is not None:
            named.append(("summary", embeddings.summary))
        return named
    return [("vectors", embeddings)]


def describe(embeddings: Embeddings) -> str:
    """``[4, 32] float32`` or ``vector sets [4, 6, 32] float32 (+ summary [4, 32])``."""
    if isinstance(embeddings, VectorSets):
        text = f"vector sets {list(embeddings.vectors.shape)} {str(embeddings.vectors.dtype).removeprefix('torch.')}"
        if embeddings.summary is not None:
            text += f" + summary {list(embeddings.summary.shape)}"
        return text
    return f"{list(embeddings.shape)} {str(embeddings.dtype).removeprefix('torch.')}"

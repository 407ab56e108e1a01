"""The `cosine` head on global vectors and on vector sets (compared by their means)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.heads.cosine import CosineHead
from harness.embeddings import VectorSets


def test_cosine_of_global_vectors():
    images, texts = torch.randn(3, 8), torch.randn(5, 8)
    expected = F.cosine_similarity(images[:, None], texts[None], dim=-1)
    torch.testing.assert_close(CosineHead(None)(images, texts), expected)


def test_vector_sets_are_compared_by_the_mean_of_their_real_vectors():
    words = torch.randn(2, 4, 8)
    words[0, 2:] = 0  # first caption has 2 words, the padding is zero
    texts = VectorSets(words, torch.tensor([2, 4]))
    images = VectorSets(torch.randn(3, 5, 8), torch.full((3,), 5))
    means = torch.stack([words[0, :2].mean(0), words[1].mean(0)])
    expected = F.cosine_similarity(images.vectors.mean(1)[:, None], means[None], dim=-1)
    torch.testing.assert_close(CosineHead(None)(images, texts), expected)

"""Deliberately broken components, one contract violation each, registered as a plugin.

Used in process (`PluginHost(extra_plugins=[toy_components])`) and as a loose plugin file
(`itr --plugins-dir`): the module imports nothing from the tests package.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from harness.hookspecs import hookimpl


def _cosine(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    return F.normalize(images, dim=-1) @ F.normalize(texts, dim=-1).T


class BatchSoftmaxHead(nn.Module):
    """Leaks through the batch: each image's scores are a softmax over the batch's captions."""

    def __init__(self, ctx, *, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        return torch.softmax(_cosine(images, texts) / self.temperature, dim=1)


class PositionBiasHead(nn.Module):
    """Depends on batch order: a caption's score grows with its position in the batch."""

    def __init__(self, ctx) -> None:
        super().__init__()

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        return _cosine(images, texts) + 0.01 * torch.arange(len(texts), dtype=images.dtype)


class PairingReaderHead(nn.Module):
    """Reads the ground-truth pairing at evaluation (as the public AsCL code's pooling does)."""

    reads_pairing_labels = True

    def __init__(self, ctx) -> None:
        super().__init__()

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        return _cosine(images, texts)

    def score_with_pairing(self, images: torch.Tensor, texts: torch.Tensor, image_of_caption: torch.Tensor) -> torch.Tensor:
        bonus = torch.zeros(len(images), len(texts))
        bonus[image_of_caption, torch.arange(len(texts))] = 1.0
        return _cosine(images, texts) + bonus


class UnusedParameterHead(nn.Module):
    """A trainable parameter nothing reads: it would sit in the optimiser and never learn."""

    def __init__(self, ctx) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.forgotten = nn.Linear(4, 4)

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        return self.scale * _cosine(images, texts)


class ClaimsSetsHead(nn.Module):
    """Declares vector sets among its inputs but scores global vectors only."""

    accepts = ("vectors", "sets")

    def __init__(self, ctx) -> None:
        super().__init__()

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        return _cosine(images, texts)


class MisnamedInputsHead(nn.Module):
    """Declares an input kind that does not exist ("set" for "sets")."""

    accepts = ("set",)

    def __init__(self, ctx) -> None:
        super().__init__()

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        return _cosine(images, texts)


class RewardingLoss(nn.Module):
    """Backwards: it rises when the positives outscore the negatives."""

    def __init__(self, ctx) -> None:
        super().__init__()

    def forward(self, scores: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
        return scores.diagonal().sum() - scores.sum() / scores.shape[1]


class LearnableTemperatureLoss(nn.Module):
    """InfoNCE with a learnable temperature the trainer never optimises (it trains the model only)."""

    def __init__(self, ctx) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.tensor(-2.0))

    def forward(self, scores: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
        target = torch.arange(len(scores))
        return F.cross_entropy(scores / self.log_temperature.exp(), target)


class GlobalNoise:
    """A feature-level negative that draws from torch's global generator, not from its rng."""

    level = "feature"

    def __init__(self, ctx) -> None:
        pass

    def __call__(self, texts: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return texts + torch.randn(texts.shape)


class BatchCentredEncoder(nn.Module):
    """Leaks through the batch at evaluation: embeddings are centred on the batch mean."""

    def __init__(self, ctx, *, embed_dim: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(ctx.image_feature_shapes["pooled"][-1], embed_dim)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = self.fc(features["pooled"])
        return x - x.mean(dim=0, keepdim=True)


class UnsavedProjectionEncoder(nn.Module):
    """Keeps a random projection in a plain attribute: checkpoints do not hold it."""

    def __init__(self, ctx, *, embed_dim: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(ctx.image_feature_shapes["pooled"][-1], embed_dim)
        self.projection = torch.randn(embed_dim, embed_dim)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.fc(features["pooled"]) @ self.projection


@hookimpl
def register_similarity_heads(register):
    register("toy-batch-softmax", BatchSoftmaxHead)
    register("toy-position-bias", PositionBiasHead)
    register("toy-pairing-reader", PairingReaderHead)
    register("toy-unused-parameter", UnusedParameterHead)
    register("toy-claims-sets", ClaimsSetsHead)
    register("toy-misnamed-inputs", MisnamedInputsHead)


@hookimpl
def register_losses(register):
    register("toy-rewarding", RewardingLoss)
    register("toy-learnable-temperature", LearnableTemperatureLoss)


@hookimpl
def register_sample_generators(register):
    register("toy-global-noise", GlobalNoise)


@hookimpl
def register_encoders(register):
    register("toy-batch-centred", BatchCentredEncoder, kind="image")
    register("toy-unsaved-projection", UnsavedProjectionEncoder, kind="image")

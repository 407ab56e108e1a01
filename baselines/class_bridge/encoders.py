"""The training-free class bridge: a real cross-modal floor with no paired training data.

An image is described by its ImageNet classifier's belief over the 1000 classes; each class is a
MiniLM embedding of its name; the image embedding is the belief-weighted mean of those class
embeddings. Captions are MiniLM sentence embeddings. Both live in MiniLM's space, so cosine
similarity ranks captions against images without a single training step
(docs/methods/class-bridge.md).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from baselines.vse.encoders import l2_normalize
from harness.errors import UserError
from harness.interfaces import BuildContext

CLASSES_FILE = Path(__file__).with_name("imagenet1k_classes.tsv")


def imagenet_class_names(path: Path = CLASSES_FILE) -> list[str]:
    """The first lemma of each ImageNet-1k class, in logit order (e.g. 'tench', 'goldfish')."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = sorted(csv.DictReader(handle, delimiter="\t"), key=lambda row: int(row["index"]))
    return [row["lemmas"].split(",")[0].strip() for row in rows]


class ClassBridgeImageEncoder(nn.Module):
    """softmax(logits / temperature) [B, 1000] @ class embeddings [1000, D] -> [B, D], unit norm.

    Args:
        prompt: template each class name is put into before embedding.
        temperature: softmax temperature on the logits; lower trusts the top class more.
    """

    def __init__(self, ctx: BuildContext, *, prompt: str = "a photo of a {}.", temperature: float = 1.0) -> None:
        super().__init__()
        if "logits" not in ctx.image_feature_shapes:
            raise UserError(
                "class-bridge needs ImageNet 'logits' image features; the image features on offer are "
                f"{', '.join(ctx.image_feature_shapes) or 'none'}"
            )
        prompts = [prompt.format(name) for name in imagenet_class_names()]
        class_embeddings = torch.from_numpy(ctx.frozen_text.encode_texts(prompts)["sentence"].copy())
        self.register_buffer("class_embeddings", l2_normalize(class_embeddings.float()))
        self.temperature = temperature

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        belief = torch.softmax(features["logits"].float() / self.temperature, dim=-1)
        return l2_normalize(belief @ self.class_embeddings)


class FrozenSentenceEncoder(nn.Module):
    """Captions as the frozen text backbone's sentence embeddings [B, D] (no trainable weights)."""

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()
        self.frozen_text = ctx.frozen_text

    def prepare(self, captions: Sequence[str]) -> dict[str, np.ndarray]:
        """captions -> ``sentence`` [M, D_text], memory-mapped from the feature cache: the
        trainer and the evaluator read only the rows of each batch."""
        return {"sentence": self.frozen_text.encode_texts(list(captions))["sentence"]}

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return l2_normalize(inputs["sentence"])

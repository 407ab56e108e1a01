"""Checks of training objectives (`harness.interfaces.Loss`).

A loss sees the batch score matrix [B, B (+ G generated columns)] with the positives on the
diagonal and the image id of each pair. It must return a finite scalar, fall when the positives
outscore the negatives, and send finite gradients back into the scores. The trainer optimises
the model's parameters only, so a loss holding trainable parameters would never train them.

A loss that declares ``reads_batch = True`` also gets a `harness.training.batch.TrainingBatch`,
and ``begin_stage(model)`` is called before its first step, as the trainer does. Checked on its
own, the batch comes from a small reference model (`reference_model`); inside a method, from the
method's own model.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from harness.conformance.compare import require_finite
from harness.conformance.report import CheckFailed
from harness.conformance.subject import (
    ComponentChecks,
    Subject,
    determinism,
    devices,
    require_module,
    trainable_parameters,
)
from harness.conformance.synthetic import SyntheticData
from harness.errors import UserError
from harness.training.feeds import gather

BATCH = 6
STEP = {"stage": "itr-check", "epoch": 1, "step": 1, "steps": 2}
"""Where the checked step sits: the middle of a stage's second epoch, past any first-epoch
warm-up (a warm-up ramp scales the first step of a stage to zero)."""


@dataclass
class StepInputs:
    """The model side of a training step, for losses that read the batch.

    Attributes:
        model: the `RetrievalModel` (evaluation mode: the step's embeddings are deterministic).
        image_features: {name: Tensor [B, ...]} of the batch's images.
        text_inputs: prepared inputs [B, ...] of the batch's captions.
        image_texts: {source: prepared inputs [B, ...]}, one text per item's image.
        any_source: prepared inputs served for a text source of any name (reference model),
            or None: only the names in `image_texts` exist (a method's text sources).
    """

    model: Any
    image_features: Mapping[str, torch.Tensor]
    text_inputs: Mapping[str, torch.Tensor]
    image_texts: Mapping[str, Mapping[str, torch.Tensor]] = field(default_factory=dict)
    any_source: Mapping[str, torch.Tensor] | None = None

    def training_batch(self, image_ids: torch.Tensor) -> Any:
        from harness.training.batch import TrainingBatch

        self.model.eval()
        rows = torch.arange(len(image_ids))

        def image_texts(name: str) -> dict[str, torch.Tensor]:
            if name in self.image_texts:
                return gather(self.image_texts[name], rows, torch.device("cpu"))
            if self.any_source is not None:
                return gather(self.any_source, rows, torch.device("cpu"))
            known = ", ".join(self.image_texts) or "none"
            raise UserError(f"the loss reads text source '{name}', which the method does not define; it has: {known}")

        return TrainingBatch(
            **STEP,
            image_ids=image_ids,
            images=self.model.encode_images(dict(self.image_features)),
            texts=self.model.encode_texts(dict(self.text_inputs)),
            model=self.model,
            image_texts=image_texts,
        )


class _HashedWordsEncoder(nn.Module):
    """Reference text encoder: the mean of hashed word embeddings, [B, dim]."""

    def __init__(self, dim: int = 16, buckets: int = 97) -> None:
        super().__init__()
        self.buckets = buckets
        self.embedding = nn.Embedding(buckets, dim, padding_idx=0)

    def prepare(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        words = [text.lower().split() or ["."] for text in texts]
        ids = torch.zeros(len(texts), max(len(w) for w in words), dtype=torch.int64)
        for row, text in enumerate(words):
            ids[row, : len(text)] = torch.tensor([1 + zlib.crc32(w.encode()) % (self.buckets - 1) for w in text])
        return {"ids": ids, "lengths": torch.tensor([len(w) for w in words])}

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.embedding(inputs["ids"]).sum(dim=1) / inputs["lengths"][:, None]


class _PooledLinear(nn.Module):
    """Reference image encoder: a linear map of the pooled feature, [B, dim]."""

    def __init__(self, in_dim: int, dim: int = 16) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, dim)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.fc(features["pooled"])


class _Dot(nn.Module):
    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        return images @ texts.T


def reference_step(data: SyntheticData, seed: int) -> StepInputs:
    """A small global-embedding model and one batch of synthetic items, for a loss checked alone."""
    from harness.training.model import RetrievalModel

    torch.manual_seed(seed)
    text_encoder = _HashedWordsEncoder()
    model = RetrievalModel(_PooledLinear(data.feature_shapes["pooled"][-1]), text_encoder, _Dot())
    return StepInputs(
        model=model,
        image_features=data.image_features(BATCH, salt=60),
        text_inputs=text_encoder.prepare(data.captions(BATCH, salt=60)),
        any_source=text_encoder.prepare(data.dense_texts(BATCH, salt=60)),
    )


class LossChecks(ComponentChecks):
    """interface, ranking direction, determinism, gradients.

    Args:
        extra_columns: generated negative columns the method appends (G), 0 for a plain [B, B].
        step: the model side of a step for losses that read the batch (default: `reference_step`).
    """

    CHECKS = (
        ("interface", "interface"),
        ("ranking-direction", "ranking_direction"),
        ("determinism", "determinism"),
        ("gradients", "gradients"),
    )

    def __init__(self, subject: Subject, extra_columns: int = 0, step: StepInputs | None = None) -> None:
        super().__init__(subject)
        self.extra_columns = extra_columns
        self._step = step
        self._begun: list[Any] = []

    @property
    def step(self) -> StepInputs:
        if self._step is None:
            self._step = reference_step(self.subject.data, self.subject.seed)
        return self._step

    def batch(self, positives: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
        return self.subject.data.loss_batch(BATCH, extra_columns=self.extra_columns, positives=positives)

    def call(self, loss: Any, scores: torch.Tensor, image_ids: torch.Tensor) -> Any:
        """One step as the trainer takes it: ``begin_stage(model)`` before a loss's first step,
        ``batch=`` for a loss that reads the batch."""
        if hasattr(loss, "begin_stage") and not any(loss is begun for begun in self._begun):
            loss.begin_stage(self.step.model)
            self._begun.append(loss)
        if getattr(loss, "reads_batch", False):
            return loss(scores, image_ids, batch=self.step.training_batch(image_ids.cpu()))
        return loss(scores, image_ids)

    def value(self, loss: Any, positives: float = 0.9) -> torch.Tensor:
        loss.eval()
        with torch.no_grad():
            return self.call(loss, *self.batch(positives))

    def interface(self) -> str:
        loss = require_module(self.primary)
        scores, image_ids = self.batch()
        # A loss reading the batch gets CPU embeddings from the model: it is run on the CPU only.
        for device in devices() if not getattr(loss, "reads_batch", False) else [torch.device("cpu")]:
            loss.to(device)
            out = self.call(loss, scores.to(device), image_ids.to(device))
            if not isinstance(out, torch.Tensor) or out.dim() != 0:
                shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise CheckFailed(f"forward(scores, image_ids) must return a scalar tensor, got {shape}")
            if out.device.type != device.type:
                raise CheckFailed(f"loss on {out.device} for scores on {device}")
        loss.to("cpu")
        if not out.is_floating_point():
            raise CheckFailed(f"the loss must be floating point, got {out.dtype}")
        require_finite(out, "the loss")
        reads = ", reading the batch" if getattr(loss, "reads_batch", False) else ""
        return f"scalar {float(out.detach()):.4g} for scores {list(scores.shape)}{reads}"

    def ranking_direction(self) -> str:
        good, bad = float(self.value(self.primary, 0.9)), float(self.value(self.primary, -0.9))
        if not good < bad:
            raise CheckFailed(
                f"the loss is {good:.4g} when the positives score 0.9 and {bad:.4g} when they score -0.9 "
                "(negatives near 0): it must fall as the positives rise"
            )
        return f"{good:.4g} with positives ahead, {bad:.4g} with positives behind"

    def determinism(self) -> str:
        seed = self.subject.seed

        def run(loss: Any) -> dict[str, torch.Tensor]:
            outputs = {"loss": self.value(loss)}
            loss.train()
            torch.manual_seed(seed + 7)
            with torch.no_grad():
                outputs["training-mode loss"] = self.call(loss, *self.batch())
            return outputs

        return determinism(self.subject, run)

    def gradients(self) -> str:
        loss = self.subject.build()
        loss.train()
        scores, image_ids = self.batch(positives=-0.9)
        scores.requires_grad_()
        value = self.call(loss, scores, image_ids)
        params = trainable_parameters(loss)
        if params:
            names = ", ".join(name for name, _ in params[:3])
            raise CheckFailed(
                f"the loss holds {len(params)} trainable parameters ({names}), but the trainer optimises the "
                "model's parameters only: they would never change; move them into a model component or freeze them"
            )
        require_finite(value.detach(), "the loss")
        value.backward()
        if scores.grad is None:
            raise CheckFailed("no gradient flows back into the scores: the model would never train")
        require_finite(scores.grad, "gradient of the scores")
        if not bool(scores.grad.abs().sum() > 0):
            raise CheckFailed("the gradient of the scores is zero where the positives score below the negatives")
        return "finite, non-zero gradient into the scores; no parameters of its own"

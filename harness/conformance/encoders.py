"""Checks of trainable image and text encoders (`harness.interfaces.ImageEncoder`, `TextEncoder`).

An encoder embeds each item on its own: evaluation embeds a split in batches of
``eval_batch_size`` and the feature cache in shards, so an item's embedding that depended on
its batch neighbours (batch statistics at test time, padding that leaks into the result) would
change with the batch size and the order of the split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.conformance.compare import require_finite, require_same_items
from harness.conformance.report import CheckFailed
from harness.conformance.subject import (
    ComponentChecks,
    checkpoint_round_trip,
    determinism,
    devices,
    gradients,
    require_module,
    require_on,
)
from harness.conformance.synthetic import describe, leaves
from harness.embeddings import Embeddings, VectorSets
from harness.config.job_config import CAPTIONS
from harness.training.feeds import gather
from harness.training.model import prepare_texts

POOL = 9
"""Synthetic items per check; batches are drawn from these by index."""
BATCH = torch.arange(6)
PERMUTED = torch.tensor([3, 5, 0, 4, 1, 2])


class EncoderChecks(ComponentChecks):
    """interface, batch order and composition, determinism, gradients, checkpoint."""

    CHECKS = (
        ("interface", "interface"),
        ("leakage/batch-order", "batch_order"),
        ("leakage/batch-composition", "batch_composition"),
        ("determinism", "determinism"),
        ("gradients", "gradients"),
        ("checkpoint", "checkpoint"),
    )

    @property
    def is_text(self) -> bool:
        return self.subject.spec.kind == "text-encoder"

    def encode(self, module: Any, index: torch.Tensor, device: torch.device = torch.device("cpu")) -> Embeddings:
        """Embeddings of synthetic items `index` (of `POOL`), as the trainer and evaluation feed them."""
        data = self.subject.data
        if self.is_text:
            prepared = prepare_texts(module, data.captions(POOL, salt=1), CAPTIONS)
            return module(gather(prepared, index, device))
        features = data.image_inputs(module, POOL, salt=1)
        return module({name: value[index].to(device) for name, value in features.items()})

    def eval_outputs(self, module: Any) -> dict[str, Embeddings]:
        module.eval()
        with torch.no_grad():
            return {"embeddings": self.encode(module, BATCH)}

    # -- checks ----------------------------------------------------------------------------------

    def interface(self) -> str:
        module = require_module(self.primary)
        if self.is_text:
            self._check_prepare(module)
        for device in devices():
            module.to(device).eval()
            with torch.no_grad():
                out = self.encode(module, BATCH, device)
            require_on(out, device, "forward")
            _check_embeddings(out, len(BATCH))
        module.to("cpu")
        return f"{len(BATCH)} items -> {describe(out)}"

    def _check_prepare(self, module: Any) -> None:
        if not callable(getattr(module, "prepare", None)):
            raise CheckFailed("a text encoder needs prepare(captions) -> {name: Tensor or array [M, ...]}")
        prepared = prepare_texts(module, self.subject.data.captions(POOL, salt=1), CAPTIONS)
        if not isinstance(prepared, dict) or not prepared:
            raise CheckFailed(f"prepare returned {type(prepared).__name__}, not a non-empty dict of tensors")
        for name, value in prepared.items():
            rows = isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim > 0 and len(value) == POOL
            if not rows:
                shape = list(value.shape) if isinstance(value, (torch.Tensor, np.ndarray)) else type(value).__name__
                raise CheckFailed(
                    f"prepare: '{name}' must be a Tensor or numpy array with the caption axis first ({POOL} captions), got {shape}"
                )

    def batch_order(self) -> str:
        full = self.eval_outputs(self.primary)["embeddings"]
        with torch.no_grad():
            shuffled = self.encode(self.primary, PERMUTED)
        require_same_items(shuffled, full[PERMUTED], "item embeddings after reordering the batch")
        return "reordering the batch reorders the embeddings, nothing else"

    def batch_composition(self) -> str:
        full = self.eval_outputs(self.primary)["embeddings"]
        with torch.no_grad():
            alone = self.encode(self.primary, torch.tensor([4]))
            part = self.encode(self.primary, torch.arange(3))
            mixed = self.encode(self.primary, torch.tensor([0, 1, 2, 6, 7, 8]))
        require_same_items(alone, full[torch.tensor([4])], "item 4 embedded alone vs in the batch")
        require_same_items(part, full[torch.arange(3)], "items 0-2 as a sub-batch")
        require_same_items(mixed[torch.arange(3)], full[torch.arange(3)], "items 0-2 beside other items")
        return "alone, in a sub-batch and beside other items: same embeddings"

    def determinism(self) -> str:
        seed = self.subject.seed

        def run(module: Any) -> dict[str, Embeddings]:
            outputs = dict(self.eval_outputs(module))
            module.train()
            torch.manual_seed(seed + 7)
            with torch.no_grad():
                outputs["training-mode embeddings"] = self.encode(module, BATCH)
            return outputs

        return determinism(self.subject, run, first=self.primary)

    def gradients(self) -> str:
        weights = torch.Generator().manual_seed(self.subject.seed)

        def loss(module: Any) -> torch.Tensor:
            torch.manual_seed(self.subject.seed + 7)
            out = self.encode(module, BATCH)
            return sum((tensor * torch.randn(tensor.shape, generator=weights)).sum() for _, tensor in leaves(out))

        return gradients(self.primary, loss)

    def checkpoint(self) -> str:
        return checkpoint_round_trip(self.subject, self.primary, self.eval_outputs)


def _check_embeddings(out: Any, n: int) -> None:
    """A Tensor [n, D] or VectorSets [n, N, D] (lengths in [1, N], zero past them), float, finite."""
    if isinstance(out, VectorSets):
        vectors, lengths = out.vectors, out.lengths
        if vectors.dim() != 3 or len(vectors) != n:
            raise CheckFailed(f"VectorSets.vectors must be [{n}, N, D], got {list(vectors.shape)}")
        if lengths.shape != (n,) or lengths.is_floating_point():
            raise CheckFailed(f"VectorSets.lengths must be int64 [{n}], got {list(lengths.shape)} {lengths.dtype}")
        if int(lengths.min()) < 1 or int(lengths.max()) > vectors.shape[1]:
            raise CheckFailed(f"set lengths {lengths.tolist()} outside [1, {vectors.shape[1]}]")
        if bool((vectors * ~out.mask()[..., None]).abs().sum() > 0):
            raise CheckFailed("rows past a set's length must be zero (VectorSets contract)")
        if out.summary is not None and (out.summary.dim() != 2 or len(out.summary) != n):
            raise CheckFailed(f"VectorSets.summary must be [{n}, D], got {list(out.summary.shape)}")
    elif isinstance(out, torch.Tensor):
        if out.dim() != 2 or len(out) != n:
            raise CheckFailed(f"embeddings must be [{n}, D] (or VectorSets), got {list(out.shape)}")
    else:
        raise CheckFailed(f"forward returned {type(out).__name__}; expected a Tensor [B, D] or VectorSets")
    for name, tensor in leaves(out):
        if not tensor.is_floating_point():
            raise CheckFailed(f"{name} must be floating point, got {tensor.dtype}")
        require_finite(tensor, name)

"""Checks of sample generators (`TextSampleGenerator`, `FeatureSampleGenerator`).

A generator makes one sample per caption, of the same kind as its input, and draws random
numbers only from the `rng` it is handed: the trainer seeds that stream per job, so a generator
that reached for Python's or torch's global generator would make runs irreproducible.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from harness.conformance.compare import require_finite, require_same_items
from harness.conformance.report import CheckFailed, CheckSkipped, one_line
from harness.conformance.sources import DEFAULT_DIM, EmbeddingSource
from harness.conformance.subject import ComponentChecks, Subject, require_same_state
from harness.conformance.synthetic import as_leaf, describe, leaves
from harness.embeddings import Embeddings, VectorSets

BATCH = 6
LEVELS = ("text", "feature")


class GeneratorChecks(ComponentChecks):
    """interface, determinism (own rng only), gradients (feature level).

    Args:
        texts: where caption embeddings come from (a method's text encoder); None tries
            synthetic vector sets, then global vectors.
    """

    CHECKS = (
        ("interface", "interface"),
        ("determinism", "determinism"),
        ("gradients", "gradients"),
    )

    def __init__(self, subject: Subject, texts: EmbeddingSource | None = None) -> None:
        super().__init__(subject)
        self.texts = texts
        self.inputs: Embeddings | None = None

    @property
    def level(self) -> str:
        return getattr(self.primary, "level", None)

    def generate(self, generator: Any, seed: int) -> Any:
        """One call as the trainer makes it, with a fresh rng seeded by `seed`."""
        if self.level == "text":
            captions = self.subject.data.captions(BATCH, salt=3)
            siblings = [captions[k - k % 2 : k - k % 2 + 2] for k in range(BATCH)]  # two captions per image
            return generator(captions, siblings, random.Random(seed))
        return generator(self.inputs, torch.Generator().manual_seed(seed))

    def interface(self) -> str:
        generator = self.primary
        if self.level not in LEVELS:
            raise CheckFailed(f"a sample generator needs a class attribute level = 'text' or 'feature', got {self.level!r}")
        if not callable(generator):
            raise CheckFailed("a sample generator must be callable")
        if self.level == "text":
            out = self.generate(generator, self.subject.seed)
            if not isinstance(out, list) or len(out) != BATCH or not all(isinstance(c, str) for c in out):
                raise CheckFailed(f"a text generator returns one caption string per caption ({BATCH}), got {out!r:.80}")
            return f"{BATCH} captions -> {BATCH} generated captions"
        self.inputs = self._feature_inputs(generator)
        out = self.generate(generator, self.subject.seed)
        _check_like(out, self.inputs)
        return f"{describe(self.inputs)} -> same kind and shape"

    def _feature_inputs(self, generator: Any) -> Embeddings:
        if self.texts is not None:
            return self.texts(BATCH, 30)
        data, errors = self.subject.data, []
        for candidate in (data.vector_sets(BATCH, DEFAULT_DIM, 30, width=8), data.global_embeddings(BATCH, DEFAULT_DIM, 30)):
            try:
                generator(candidate, torch.Generator().manual_seed(0))
            except Exception as exc:
                errors.append(f"{describe(candidate)}: {one_line(exc)}")
                continue
            return candidate
        raise CheckFailed("the generator accepts none of the synthetic caption embeddings; " + "; ".join(errors))

    def determinism(self) -> str:
        """Same rng seed, same samples, whatever state the global generators are in."""
        first, second = self.subject.build(), self.subject.build()
        if isinstance(first, torch.nn.Module):
            require_same_state(second, first, "two builds with the same seed")
        outputs = []
        for generator, global_seed in ((first, 1), (second, 2)):
            random.seed(global_seed)
            torch.manual_seed(global_seed)
            outputs.append(self.generate(generator, self.subject.seed))
        if self.level == "text":
            if outputs[0] != outputs[1]:
                raise CheckFailed(
                    "the same rng seed gave different captions: the generator draws from a global random generator, "
                    "not only from the rng it is given"
                )
        else:
            try:
                require_same_items(outputs[1], outputs[0], "two calls with the same rng seed")
            except CheckFailed as exc:
                raise CheckFailed(f"{exc} (it must draw only from the rng it is given)") from None
        return "the same rng seed gives the same samples, whatever the global random state"

    def gradients(self) -> str:
        if self.level == "text":
            raise CheckSkipped("text-level samples are strings; they are encoded like captions")
        inputs = as_leaf(self.inputs)
        out = self.primary(inputs, torch.Generator().manual_seed(self.subject.seed))
        tensors = [tensor for _, tensor in leaves(out) if tensor.requires_grad]
        if not tensors:
            return "the samples are detached (no gradient through them into the text encoder)"
        weights = torch.Generator().manual_seed(self.subject.seed)
        sum((t * torch.randn(t.shape, generator=weights)).sum() for t in tensors).backward()
        for name, tensor in leaves(inputs):
            if tensor.grad is not None:
                require_finite(tensor.grad, f"gradient of the caption {name}")
        return "finite gradients through the samples into the caption embeddings"


def _check_like(out: Any, inputs: Embeddings) -> None:
    """Generated negatives have the kind and shape of the caption embeddings they come from."""
    if isinstance(inputs, VectorSets):
        if not isinstance(out, VectorSets):
            raise CheckFailed(f"vector sets in, {type(out).__name__} out: a sample must be of the input's kind")
        if out.vectors.shape != inputs.vectors.shape or not torch.equal(out.lengths, inputs.lengths):
            raise CheckFailed(
                f"vector sets {list(inputs.vectors.shape)} in, {list(out.vectors.shape)} out (or other lengths): "
                "one sample per caption, same shape"
            )
        if bool((out.vectors * ~out.mask()[..., None]).abs().sum() > 0):
            raise CheckFailed("rows past a set's length must stay zero (VectorSets contract)")
    elif not isinstance(out, torch.Tensor) or out.shape != inputs.shape:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckFailed(f"vectors {list(inputs.shape)} in, {got} out: one sample per caption, same shape")
    for name, tensor in leaves(out):
        require_finite(tensor, f"generated {name}")

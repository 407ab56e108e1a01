"""Built-in methods as a job builds them, on synthetic data: for the benchmarks that time or train
whole models (test_eval_every_method.py, test_rerank_trained.py).

A method is resolved from its registered recipe (`resolve_method`, overrides merged in) and
assembled by the job layer (`harness.job.assemble`), with untrained weights, exactly as
`itr run` and `itr check` build it. Its data side is synthetic: image features written to a temp
dir as float16 ``.npy`` files and read back memory-mapped (the precomp layout's storage: the
evaluator and trainer read only each batch's rows), and the conformance kit's frozen text
backbone (`SyntheticTextBackbone`: one hashed vector per word) at MiniLM's 384 dimensions, so
encoders that read frozen text features (AsCL, the class bridge) get them at their real size
without a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.config.dotted import nest
from harness.config.experiment_file import DatasetEntry
from harness.config.roles import MODEL_ROLES
from harness.conformance.synthetic import SyntheticTextBackbone
from harness.interfaces import BuildContext
from harness.job.assemble import AssembledJob, assemble
from harness.job.job import Job
from harness.job.resolve import resolve_method
from harness.registry import Registry

FROZEN_TEXT_DIM = 384
"""all-MiniLM-L6-v2's hidden size: the frozen text features AsCL and the class bridge read."""


def memory_mapped(
    folder: Path, arrays: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Each array written as ``folder/<name>.npy`` in float16 (floating point) and read back
    memory-mapped, as a precomp dataset's features are."""
    folder.mkdir(parents=True, exist_ok=True)
    mapped = {}
    for name, array in arrays.items():
        path = folder / f"{name}.npy"
        np.save(
            path,
            array.astype(np.float16)
            if np.issubdtype(array.dtype, np.floating)
            else array,
        )
        mapped[name] = np.load(path, mmap_mode="r")
    return mapped


def build_context(
    image_features: Mapping[str, np.ndarray],
    train_captions: Sequence[str],
    seed: int = 0,
) -> BuildContext:
    """What the factories see: the features' per-item shapes, the training captions (vocabularies)
    and the synthetic frozen text backbone at 384 dimensions."""
    shapes = {name: tuple(array.shape[1:]) for name, array in image_features.items()}
    return BuildContext(
        shapes, tuple(train_captions), SyntheticTextBackbone(FROZEN_TEXT_DIM), seed
    )


def embed_dim_overrides(
    registry: Registry, recipe: str, dim: int | None
) -> dict[str, Any]:
    """``{role: {"embed_dim": dim}}`` for every model component of `recipe` that has an
    ``embed_dim`` option (encoders, AsCL's head), so a recipe's joint space shrinks as one; {}
    for None (the recipe's own size)."""
    if dim is None:
        return {}
    _, config = resolve_method(registry, recipe, {}, recipe)
    return nest(
        {
            f"{role}.embed_dim": dim
            for role in MODEL_ROLES
            if "embed_dim" in getattr(config, role).options
        }
    )


def assemble_method(
    registry: Registry,
    recipe: str,
    overrides: Mapping[str, Any],
    ctx: BuildContext,
    seed: int = 0,
) -> tuple[Job, AssembledJob]:
    """The job of `recipe` with `overrides` (nested tables) on a synthetic dataset, and its
    assembled model, stages and generated samples, untrained."""
    method, config = resolve_method(registry, recipe, overrides, f"benchmark {recipe}")
    job = Job.create(recipe, method, DatasetEntry(name="synthetic"), seed, config)
    return job, assemble(job, registry, ctx)

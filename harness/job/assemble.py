"""Assembling a job: its components built through the registry, seeded, capability-checked.

This is the one place a job's model, training stages, generated samples and evaluation
protocols come from; the runner, worker processes, `itr eval` and the conformance kit all call
`assemble`, so what a check runs is what a job runs. The data side (which features and captions
a component is sized by) arrives as a `BuildContext`: the runner makes it from the job's dataset
(`harness.job.inputs`), the conformance kit from synthetic data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from harness.capabilities import check_capabilities
from harness.config.job_config import CAPTIONS, ComponentRef
from harness.config.roles import MODEL_ROLES
from harness.interfaces import BuildContext
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.job.job import Job
    from harness.training.model import RetrievalModel, SplitInputs
    from harness.training.samples import GeneratedSamples
    from harness.training.trainer import Stage


def build_component(registry: Registry, kind: str, ref: ComponentRef, where: str, ctx: BuildContext | None = None) -> Any:
    """`ref` built through the registry (its options validated), capability-checked."""
    component = registry.get(kind, ref.name).build(ref.options, where, ctx)
    check_capabilities(component, kind, where)
    return component


@dataclass
class AssembledJob:
    """A job's built parts, before any training.

    Attributes:
        model: image encoder + text encoder + head, on the CPU.
        stages: the recipe's training stages, each with its built loss (empty: no training).
        samples: the generated-sample plan, or None when the job generates nothing.
    """

    model: "RetrievalModel"
    stages: list["Stage"]
    samples: "GeneratedSamples | None"


def assemble(job: "Job", registry: Registry, ctx: BuildContext) -> AssembledJob:
    """Seed the job, then build its model, stages and generated samples from `ctx`.

    Everything is built under one seeding, in a fixed order (model, losses, generators), so a
    rebuilt job (`itr eval`, a worker process) has the same parameters.
    """
    from harness.training.model import RetrievalModel
    from harness.training.samples import GeneratedSamples
    from harness.training.trainer import Stage, seed_everything

    config, where = job.config, f"methods.{job.label}"
    seed_everything(job.seed)
    model = RetrievalModel(
        *(build_component(registry, kind, getattr(config, role), f"{where}.{role}", ctx) for role, kind in MODEL_ROLES.items())
    )
    stages = [
        Stage(
            name=name,
            epochs=stage.epochs,
            loss=build_component(registry, "loss", stage.loss, f"{where}.stages.{name}.loss", ctx),
            lr=stage.lr,
            restart=stage.restart,
            text=stage.text,
        )
        for name, stage in config.stages.items()
    ]
    samples = None
    generators = config.generators
    if generators.any:

        def built(group: str) -> list[Any]:
            refs = getattr(generators, group)
            return [build_component(registry, "sample-generator", ref, f"{where}.generators.{group}.{index}", ctx) for index, ref in enumerate(refs)]

        samples = GeneratedSamples(
            positives=built("positives"),
            negatives=built("negatives"),
            positive_weight=generators.positive_weight,
            positive_mix=generators.positive_mix,
            negative_mix=generators.negative_mix,
            frozen_text=ctx.frozen_text,
            seed=job.seed,
        )
    return AssembledJob(model, stages, samples)


def split_inputs(
    model: "RetrievalModel",
    image_features: Any,
    captions: Sequence[str],
    image_of_caption: Any,
    image_texts: Mapping[str, Sequence[str]] | None = None,
) -> "SplitInputs":
    """What `model` reads of one split: its image features (or pixel feed), its captions
    prepared by the text encoder, and each text source's texts prepared likewise (training splits only)."""
    import torch

    from harness.training.model import SplitInputs, prepare_texts

    return SplitInputs(
        image_features=image_features,
        text_inputs=prepare_texts(model.text_encoder, captions, CAPTIONS),
        image_of_caption=torch.as_tensor(image_of_caption),
        captions=captions,
        image_texts={name: prepare_texts(model.text_encoder, texts, name) for name, texts in (image_texts or {}).items()},
    )

"""Checks of a method recipe: every component it resolves to, with the recipe's options, then
the assembled model end to end.

The recipe is resolved exactly as an experiment file's method would be (`resolve_method`: the
recipe's defaults, the overrides, each component's own defaults) and assembled by the job layer
(`harness.job.assemble`), so a check runs what a job would run, on synthetic data. The head is checked on what the recipe's encoders produce, the losses on score
matrices with the generated columns the recipe appends, the feature-level generators on the
text encoder's output. Three checks cover the whole model:

- ``pipeline``: one epoch (one step) of every training stage (with the recipe's generators and
  text sources) on a tiny synthetic split through the real trainer, then the real evaluation;
- ``determinism``: a second build-train-evaluate under the same seed gives the same scores;
- ``checkpoint``: the trained model through `harness.job.checkpoints.save` (weights and job
  record), rebuilt from the record with another seed as `itr eval` does, gives the same scores.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from harness.conformance.backbones import BackboneChecks
from harness.conformance.compare import require_close
from harness.conformance.encoders import EncoderChecks
from harness.conformance.evaluated import evaluate_split
from harness.conformance.generators import GeneratorChecks
from harness.conformance.heads import HeadChecks
from harness.conformance.losses import BATCH as LOSS_BATCH
from harness.conformance.losses import LossChecks, StepInputs
from harness.conformance.report import SKIP, CheckFailed, CheckResult, run_check
from harness.conformance.sources import encoded_sources
from harness.conformance.subject import Subject
from harness.conformance.synthetic import SyntheticData
from harness.conformance.texts import TextSourceChecks
from harness.config.job_config import ComponentRef
from harness.training.feeds import gather
from harness.config.roles import MODEL_ROLES
from harness.registry import ComponentSpec, Registry

N_IMAGES, CAPTIONS_PER_IMAGE = 4, 2
TRAIN_BATCH = N_IMAGES * CAPTIONS_PER_IMAGE
"""The synthetic training split: 4 images, 2 captions each, one batch of 8 per epoch (each stage
runs one step: the contract is that it runs, not that it learns; a step of a fine-tuned
transformer costs about a second on a CPU)."""


class MethodChecks:
    """All checks of one recipe, with `overrides` merged into its defaults (dotted keys nested)."""

    def __init__(self, registry: Registry, spec: ComponentSpec, overrides: Mapping[str, Any], seed: int = 0) -> None:
        from harness.config.experiment_file import DatasetEntry
        from harness.job.job import Job
        from harness.job.resolve import resolve_method

        self.registry, self.spec, self.seed = registry, spec, seed
        self.title = f"method:{spec.name}"
        method, config = resolve_method(registry, spec.name, overrides, f"itr check {self.title}")
        self.job = Job.create(spec.name, method, DatasetEntry(name="synthetic"), seed, config)
        self.config = config
        self.data = SyntheticData(seed=seed)
        self._trained: Any = None

    def subject(self, kind: str, ref: ComponentRef) -> Subject:
        return Subject(self.registry.get(kind, ref.name), ref.options, self.data, self.seed)

    def run(self) -> list[CheckResult]:
        results: list[CheckResult] = []
        image, text, head = (self.subject(kind, getattr(self.config, role)) for role, kind in MODEL_ROLES.items())
        results += EncoderChecks(image).run()
        results += EncoderChecks(text).run()
        model = self._model()
        sources = encoded_sources(model.image_encoder, model.text_encoder, self.data) if model is not None else None
        results += HeadChecks(head, sources).run()
        extra_columns = LOSS_BATCH if self.config.generators.negatives else 0
        step = self._step_inputs(model) if model is not None else None
        seen: set[str] = set()
        for _, kind, ref in self.config.component_refs()[len(MODEL_ROLES) :]:
            if kind.endswith("-backbone"):
                continue  # checked last, once each
            subject = self.subject(kind, ref)
            if self._first(subject, seen):
                if kind == "loss":
                    results += LossChecks(subject, extra_columns, step).run()
                elif kind == "sample-generator":
                    results += GeneratorChecks(subject, sources[1] if sources else None).run()
                else:
                    results += TextSourceChecks(subject).run()
        for role in ("image", "text"):
            results += BackboneChecks(self.subject(f"{role}-backbone", getattr(self.config.backbones, role))).run()
        pipeline = run_check(self.title, "pipeline", self.pipeline)
        results.append(pipeline)
        for check in ("determinism", "checkpoint"):
            if pipeline.failed:
                results.append(CheckResult(self.title, check, SKIP, "not run: the pipeline check failed"))
            else:
                results.append(run_check(self.title, check, getattr(self, check)))
        return results

    @staticmethod
    def _first(subject: Subject, seen: set[str]) -> bool:
        key = json.dumps([subject.title, dict(subject.options)], sort_keys=True, default=str)
        if key in seen:
            return False
        seen.add(key)
        return True

    def _model(self) -> Any:
        """The recipe's model, built once to feed the head, the losses and the generators; None
        when it cannot be built (the component checks say why, and the head, losses and
        generators are then fed synthetic inputs)."""
        try:
            return self.assemble(self.job).model
        except Exception:
            return None

    # -- the assembled job ------------------------------------------------------------------------

    def assemble(self, job: Any) -> Any:
        """The job layer's assembly of `job` on the synthetic data (its seed's build context)."""
        from harness.job.assemble import assemble

        return assemble(job, self.registry, self.data.context(job.seed))

    def split(self, model: Any, n_images: int = N_IMAGES, salt: int = 40) -> Any:
        """Synthetic images with 2 captions each and the recipe's text sources, as the job layer
        hands a training split to the trainer."""
        from harness.job.assemble import split_inputs

        split = self.data.retrieval_split(n_images, CAPTIONS_PER_IMAGE, salt)
        texts = {
            name: list(self.registry.get("text-source", ref.name).build(ref.options, f"{self.title}.texts.{name}").image_texts(split))
            for name, ref in self.config.texts.items()
        }
        images = self.data.image_inputs(model.image_encoder, n_images, salt)
        return split_inputs(model, images, split.captions, split.image_of_caption, texts)

    def _step_inputs(self, model: Any) -> StepInputs | None:
        """The recipe's model on a batch of synthetic items, for losses that read the batch; None
        when the model cannot be fed (the component checks say why)."""
        try:
            data = self.split(model, n_images=LOSS_BATCH, salt=60)
        except Exception:
            return None
        rows = torch.arange(LOSS_BATCH) * CAPTIONS_PER_IMAGE  # the first caption of each image
        return StepInputs(
            model=model,
            image_features={name: torch.as_tensor(value) for name, value in data.image_features.items()},
            text_inputs=gather(data.text_inputs, rows, torch.device("cpu")),
            image_texts=data.image_texts,
        )

    def train(self) -> Any:
        """A freshly assembled model after one epoch of every stage on the synthetic split (the
        recipe's generators included), as the trainer runs a job; untrained without stages."""
        from dataclasses import replace

        from harness.training.trainer import fit

        built = self.assemble(self.job)
        if built.stages:
            train = self.config.train.model_copy(update={"batch_size": TRAIN_BATCH, "device": "cpu", "amp": False})
            stages = [replace(stage, epochs=1) for stage in built.stages]
            fit(built.model, self.split(built.model), stages, train, torch.device("cpu"), samples=built.samples)
        return built.model

    @property
    def trained(self) -> Any:
        if self._trained is None:
            self._trained = self.train()
        return self._trained

    def scores(self, model: Any) -> torch.Tensor:
        """The score matrix of the synthetic split, as evaluation computes it."""
        return evaluate_split(model, self.split(model)).scores

    def pipeline(self) -> str:
        rsum = evaluate_split(self.trained, self.split(self.trained)).metrics["full/rsum"]
        if not 0 <= rsum <= 600:
            raise CheckFailed(f"evaluation gave rSum {rsum}")
        trained = f"{len(self.config.stages)} stage(s) × 1 epoch, then " if self.config.stages else ""
        return f"{trained}evaluation on {N_IMAGES} images × {CAPTIONS_PER_IMAGE} captions (rSum {rsum:.0f})"

    def determinism(self) -> str:
        """Training and evaluating twice under the same seed gives the same score matrix."""
        require_close(
            self.scores(self.train()), self.scores(self.trained), f"a second run with seed {self.seed}", ("image", "caption")
        )
        what = "training and evaluation" if self.config.stages else "evaluation"
        return f"{what} twice under seed {self.seed}: same scores"

    def checkpoint(self) -> str:
        """The trained model through the job layer's checkpoints (weights and job record),
        rebuilt from the record under another seed as `itr eval` does, gives the same scores."""
        from dataclasses import replace

        from harness.job import checkpoints
        from harness.job.job import Job

        model = self.trained
        expected = self.scores(model)
        with tempfile.TemporaryDirectory() as folder:
            checkpoints.save(model, self.job, Path(folder))
            rebuilt = Job.from_record(checkpoints.read_job(Path(folder)), f"{self.title} checkpoint")
            restored = self.assemble(replace(rebuilt, seed=self.seed + 1)).model
            checkpoints.load_weights(restored, Path(folder))
        require_close(self.scores(restored), expected, "scores after save, rebuild and load", ("image", "caption"))
        return f"{len(model.state_dict())} tensors and the job record, rebuilt with another seed: same scores"

"""Checks of a method recipe: every component it resolves to, with the recipe's options, then
the assembled model end to end.

The recipe is resolved exactly as an experiment file's method would be (`resolve_method`: the
recipe's defaults, the overrides, each component's own defaults), so a check runs what a job
would run. The head is checked on what the recipe's encoders produce, the losses on score
matrices with the generated columns the recipe appends, the feature-level generators on the
text encoder's output. Three checks cover the whole model:

- ``pipeline``: one epoch (one step) of every training stage (with the recipe's generators and
  text sources) on a tiny synthetic split through the real trainer, then the real evaluation;
- ``determinism``: a second build-train-evaluate under the same seed gives the same scores;
- ``checkpoint``: the trained model through `harness.checkpoints.save` (weights and job
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
from harness.experiment.config import CAPTIONS
from harness.registry import ComponentSpec, Registry

ROLES = {"image_encoder": "image-encoder", "text_encoder": "text-encoder", "similarity_head": "similarity-head"}
N_IMAGES, CAPTIONS_PER_IMAGE = 4, 2
TRAIN_BATCH = N_IMAGES * CAPTIONS_PER_IMAGE
"""The synthetic training split: 4 images, 2 captions each, one batch of 8 per epoch (each stage
runs one step: the contract is that it runs, not that it learns; a step of a fine-tuned
transformer costs about a second on a CPU)."""


def _options(resolved: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resolved.items() if key != "name"}


class MethodChecks:
    """All checks of one recipe, with `overrides` merged into its defaults (dotted keys nested)."""

    def __init__(self, registry: Registry, spec: ComponentSpec, overrides: Mapping[str, Any], seed: int = 0) -> None:
        from harness.experiment.jobs import resolve_method

        self.registry, self.spec, self.seed = registry, spec, seed
        self.title = f"method:{spec.name}"
        self.method, self.config, self.resolved = resolve_method(registry, spec.name, overrides, f"itr check {self.title}")
        self.data = SyntheticData(seed=seed)
        self._trained: Any = None

    def subject(self, kind: str, resolved: Mapping[str, Any]) -> Subject:
        return Subject(self.registry.get(kind, resolved["name"]), _options(resolved), self.data, self.seed)

    def run(self) -> list[CheckResult]:
        results: list[CheckResult] = []
        image, text, head = (self.subject(kind, self.resolved[role]) for role, kind in ROLES.items())
        results += EncoderChecks(image).run()
        results += EncoderChecks(text).run()
        model = self._model()
        sources = encoded_sources(model.image_encoder, model.text_encoder, self.data) if model is not None else None
        results += HeadChecks(head, sources).run()
        extra_columns = LOSS_BATCH if self.config.generators.negatives else 0
        step = self._step_inputs(model) if model is not None else None
        seen: set[str] = set()
        for stage in self.resolved["stages"].values():
            loss = self.subject("loss", stage["loss"])
            if self._first(loss, seen):
                results += LossChecks(loss, extra_columns, step).run()
        for group in ("positives", "negatives"):
            for ref in self.resolved["generators"][group]:
                generator = self.subject("sample-generator", ref)
                if self._first(generator, seen):
                    results += GeneratorChecks(generator, sources[1] if sources else None).run()
        for ref in self.resolved.get("texts", {}).values():
            text_source = self.subject("text-source", ref)
            if self._first(text_source, seen):
                results += TextSourceChecks(text_source).run()
        for role in ("image", "text"):
            results += BackboneChecks(self.subject(f"{role}-backbone", self.resolved["backbones"][role])).run()
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
            return self.build_model(self.resolved, self.seed)
        except Exception:
            return None

    # -- the assembled model ----------------------------------------------------------------------

    def build_model(self, resolved: Mapping[str, Any], seed: int) -> Any:
        from harness.training.model import RetrievalModel
        from harness.training.trainer import seed_everything

        seed_everything(seed)
        ctx = self.data.context(seed)
        parts = [
            self.registry.get(kind, resolved[role]["name"]).build(_options(resolved[role]), f"{self.title}.{role}", ctx)
            for role, kind in ROLES.items()
        ]
        return RetrievalModel(*parts)

    def image_texts(self, split: Any) -> dict[str, list[str]]:
        """Each of the recipe's text sources read on `split`: {name: one text per image}."""
        return {
            name: list(
                self.registry.get("text-source", ref["name"]).build(_options(ref), f"{self.title}.texts.{name}").image_texts(split)
            )
            for name, ref in self.resolved.get("texts", {}).items()
        }

    def split(self, model: Any, n_images: int = N_IMAGES, salt: int = 40) -> Any:
        """Synthetic images with 2 captions each and the recipe's text sources, as the runner
        hands a training split to the trainer."""
        from harness.training.model import SplitInputs, prepare_texts

        split = self.data.retrieval_split(n_images, CAPTIONS_PER_IMAGE, salt)
        return SplitInputs(
            image_features=split.image_features,
            text_inputs=prepare_texts(model.text_encoder, split.captions, CAPTIONS),
            image_of_caption=torch.as_tensor(split.image_of_caption),
            captions=split.captions,
            image_texts={
                name: prepare_texts(model.text_encoder, texts, name) for name, texts in self.image_texts(split).items()
            },
        )

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
            text_inputs={name: value[rows] for name, value in data.text_inputs.items()},
            image_texts=data.image_texts,
        )

    def train(self) -> Any:
        """A freshly built model after one epoch of every stage on the synthetic split (the
        recipe's generators included), as the trainer runs a job; untrained without stages."""
        from harness.training.trainer import fit

        model = self.build_model(self.resolved, self.seed)
        if self.config.stages:
            train = self.config.train.model_copy(update={"batch_size": TRAIN_BATCH, "device": "cpu", "amp": False})
            fit(model, self.split(model), self._stages(), train, torch.device("cpu"), samples=self._samples())
        return model

    @property
    def trained(self) -> Any:
        if self._trained is None:
            self._trained = self.train()
        return self._trained

    def scores(self, model: Any) -> torch.Tensor:
        """The score matrix of the synthetic split, as evaluation computes it."""
        return evaluate_split(model, self.split(model))[1]

    def pipeline(self) -> str:
        metrics, _ = evaluate_split(self.trained, self.split(self.trained))
        rsum = metrics["full/rsum"]
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

    def _stages(self) -> list[Any]:
        from harness.training.trainer import Stage

        ctx = self.data.context(self.seed)
        return [
            Stage(
                name=name,
                epochs=1,
                loss=self.registry.get("loss", self.resolved["stages"][name]["loss"]["name"]).build(
                    _options(self.resolved["stages"][name]["loss"]), f"{self.title}.stages.{name}.loss", ctx
                ),
                lr=stage.lr,
                restart=stage.restart,
                text=stage.text,
            )
            for name, stage in self.config.stages.items()
        ]

    def _samples(self) -> Any:
        from harness.training.samples import GeneratedSamples

        cfg, resolved = self.config.generators, self.resolved["generators"]
        if not cfg.positives and not cfg.negatives:
            return None
        ctx = self.data.context(self.seed)

        def build(group: str) -> list[Any]:
            return [
                self.registry.get("sample-generator", ref["name"]).build(_options(ref), f"{self.title}.generators.{group}", ctx)
                for ref in resolved[group]
            ]

        return GeneratedSamples(
            positives=build("positives"),
            negatives=build("negatives"),
            positive_weight=cfg.positive_weight,
            positive_mix=cfg.positive_mix,
            negative_mix=cfg.negative_mix,
            frozen_text=ctx.frozen_text,
            seed=self.seed,
        )

    def checkpoint(self) -> str:
        """The trained model through `harness.checkpoints` (weights and job record), rebuilt from
        the record under another seed as `itr eval` does, gives the same scores."""
        from harness import checkpoints
        from harness.experiment.config import DatasetEntry
        from harness.experiment.jobs import Job, config_hash, job_from_record

        model = self.trained
        job = Job(
            label=self.spec.name,
            method=self.method,
            dataset=DatasetEntry(name="synthetic"),
            seed=self.seed,
            config=self.config,
            resolved=self.resolved,
            config_hash=config_hash({"method": self.method, "config": self.resolved, "seed": self.seed}),
        )
        expected = self.scores(model)
        with tempfile.TemporaryDirectory() as folder:
            checkpoints.save(model, job, Path(folder))
            rebuilt = job_from_record(checkpoints.read_job(Path(folder)), f"{self.title} checkpoint")
            restored = self.build_model(rebuilt.resolved, self.seed + 1)
            checkpoints.load_weights(restored, Path(folder))
        require_close(self.scores(restored), expected, "scores after save, rebuild and load", ("image", "caption"))
        return f"{len(model.state_dict())} tensors and the job record, rebuilt with another seed: same scores"

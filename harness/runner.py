"""Running one job: load its data, build its components, train its stages, checkpoint, evaluate.

A job builds its components through the registry, trains through the recipe's stages (if any),
evaluates on the test split, and logs through the `JobLog` it is given. Which process runs it,
and under which parent run, is the business of `harness.experiment.run` and the executors.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.errors import UserError
from harness.experiment.config import DatasetEntry
from harness.experiment.jobs import Job
from harness.features import CachedTextBackbone, FeatureCache, split_image_features
from harness.image_files import check_image_files
from harness.interfaces import BuildContext, RetrievalSplit
from harness.protocols import PROTOCOLS
from harness.registry import Registry


@dataclass
class DataCatalog:
    """Datasets and their splits, each loaded (and validated) once per experiment run."""

    registry: Registry
    source: str
    _splits: dict[tuple[str, str, str], RetrievalSplit] = field(default_factory=dict)
    _texts: dict[tuple[str, ...], list[str]] = field(default_factory=dict)

    def split(self, entry: DatasetEntry, split: str) -> RetrievalSplit:
        key = (entry.name, json.dumps(entry.options, sort_keys=True, default=str), split)
        if key not in self._splits:
            dataset = self.registry.get("dataset", entry.name).build(entry.options, f"{self.source}: datasets.{entry.name}")
            self._splits[key] = dataset.load(split)
        return self._splits[key]

    def image_texts(self, job: Job, name: str) -> list[str]:
        """Text source `name` of `job` on the job's training split: one text per image, read and
        checked once per run (`harness.interfaces.TextSource`)."""
        entry, source = job.dataset, job.resolved["texts"][name]
        key = (entry.name, json.dumps(entry.options, sort_keys=True, default=str), entry.train, json.dumps(source, sort_keys=True, default=str))
        if key not in self._texts:
            where = f"{self.source}: methods.{job.label}.texts.{name}"
            split = self.split(entry, entry.train)
            texts = list(_component(self.registry, "text-source", source, where).image_texts(split))
            if len(texts) != split.n_images:
                raise UserError(f"{where}: {len(texts)} texts for the {split.n_images} images of split '{entry.train}'")
            self._texts[key] = texts
        return self._texts[key]

    def preflight(self, jobs: list[Job]) -> None:
        """Load every split (and text source) any job needs, check its image files once, and
        check it against the job's protocols, so malformed data stops the run before it starts.
        Only the driver runs this; worker processes load the splits it already checked."""
        checked: set[int] = set()
        for job in jobs:
            test_split = self.split(job.dataset, job.dataset.test)
            needed = {job.dataset.test: test_split}
            if job.config.stages:
                needed[job.dataset.train] = self.split(job.dataset, job.dataset.train)
                for name in job.resolved.get("texts", {}):
                    self.image_texts(job, name)
            for split_name, split in needed.items():
                if split.image_paths is not None and id(split) not in checked:
                    check_image_files(split.image_paths, f"{job.dataset.title}:{split_name}")
                    checked.add(id(split))
            for protocol in job.dataset.protocols:
                PROTOCOLS[protocol].check(test_split)


def _component(registry: Registry, kind: str, resolved: Mapping[str, Any], where: str, ctx: Any = None) -> Any:
    options = {key: value for key, value in resolved.items() if key != "name"}
    return registry.get(kind, resolved["name"]).build(options, where, ctx)


@dataclass
class BuiltJob:
    """A job's model, built on its device, and the means to feed it any split."""

    model: Any
    device: Any
    ctx: BuildContext
    image_backbone: Any
    cache: FeatureCache

    def inputs(self, split: RetrievalSplit) -> Any:
        import torch

        from harness.training.model import SplitInputs

        return SplitInputs(
            image_features=split_image_features(split, self.image_backbone, self.cache),
            text_inputs=self.model.text_encoder.prepare(split.captions),
            image_of_caption=torch.as_tensor(split.image_of_caption),
            captions=split.captions,
        )


def build_job(job: Job, registry: Registry, catalog: DataCatalog, cache: FeatureCache) -> BuiltJob:
    """Build a job's components through the registry, seeded, before any training.

    The build context offers the image features of the job's test split (their shapes) and the
    captions of its training split (vocabularies), so a rebuilt job has the same parameters.
    """
    from harness.training.device import resolve_device
    from harness.training.model import RetrievalModel
    from harness.training.trainer import seed_everything

    resolved, where = job.resolved, f"methods.{job.label}"
    image_backbone = _LazyComponent(
        lambda: _component(registry, "image-backbone", resolved["backbones"]["image"], f"{where}.backbones.image")
    )
    frozen_text = CachedTextBackbone(
        lambda: _component(registry, "text-backbone", resolved["backbones"]["text"], f"{where}.backbones.text"), cache
    )
    test_features = split_image_features(catalog.split(job.dataset, job.dataset.test), image_backbone, cache)
    train_captions = catalog.split(job.dataset, job.dataset.train).captions if job.config.stages else ()
    seed_everything(job.seed)  # frozen backbones run under their own RNG (harness.features): the cache cannot shift it
    ctx = BuildContext(
        image_feature_shapes={name: tuple(array.shape[1:]) for name, array in test_features.items()},
        train_captions=train_captions,
        frozen_text=frozen_text,
        seed=job.seed,
    )
    model = RetrievalModel(
        _component(registry, "image-encoder", resolved["image_encoder"], f"{where}.image_encoder", ctx),
        _component(registry, "text-encoder", resolved["text_encoder"], f"{where}.text_encoder", ctx),
        _component(registry, "similarity-head", resolved["similarity_head"], f"{where}.similarity_head", ctx),
    )
    device = resolve_device(job.config.train.device)
    return BuiltJob(model.to(device), device, ctx, image_backbone, cache)


def _stages(job: Job, registry: Registry, ctx: BuildContext) -> list[Any]:
    from harness.training.trainer import Stage

    return [
        Stage(
            name=name,
            epochs=stage.epochs,
            loss=_component(registry, "loss", job.resolved["stages"][name]["loss"], f"methods.{job.label}.stages.{name}.loss", ctx),
            lr=stage.lr,
            restart=stage.restart,
            text=stage.text,
        )
        for name, stage in job.config.stages.items()
    ]


def _samples(job: Job, registry: Registry, built: BuiltJob) -> Any:
    """The job's generated-sample plan, or None when it generates nothing."""
    from harness.training.samples import GeneratedSamples

    cfg, resolved = job.config.generators, job.resolved["generators"]
    if not cfg.positives and not cfg.negatives:
        return None

    def build(group: str) -> list[Any]:
        return [
            _component(registry, "sample-generator", ref, f"methods.{job.label}.generators.{group}.{index}", built.ctx)
            for index, ref in enumerate(resolved[group])
        ]

    return GeneratedSamples(
        positives=build("positives"),
        negatives=build("negatives"),
        positive_weight=cfg.positive_weight,
        positive_mix=cfg.positive_mix,
        negative_mix=cfg.negative_mix,
        frozen_text=built.ctx.frozen_text,
        seed=job.seed,
    )


def _evaluate(job: Job, built: BuiltJob, split: RetrievalSplit, protocols: list[str]) -> Any:
    from harness.evaluation import evaluate_split

    return evaluate_split(
        built.model,
        built.inputs(split),
        [PROTOCOLS[name] for name in protocols],
        batch_size=job.config.train.eval_batch_size,
        chunk=job.config.train.score_chunk,
        device=built.device,
        caption_tags=split.caption_tags,
    )


def run_job(job: Job, registry: Registry, catalog: DataCatalog, cache: FeatureCache, log: Any) -> dict[str, float]:
    """Train (if the recipe has stages), checkpoint and evaluate one job; ``{protocol/metric: value}``."""
    from harness import checkpoints
    from harness.training.model import prepare_texts
    from harness.training.trainer import fit

    built = build_job(job, registry, catalog, cache)
    if job.config.stages:
        train_inputs = built.inputs(catalog.split(job.dataset, job.dataset.train))
        train_inputs.image_texts = {
            name: prepare_texts(built.model.text_encoder, catalog.image_texts(job, name), source=name)
            for name in job.resolved.get("texts", {})
        }
        fit(
            built.model,
            train_inputs,
            _stages(job, registry, built.ctx),
            job.config.train,
            built.device,
            on_epoch=log.epoch,
            samples=_samples(job, registry, built),
        )
    with tempfile.TemporaryDirectory() as folder:
        log.checkpoint(checkpoints.save(built.model, job, Path(folder)))
    evaluation = _evaluate(job, built, catalog.split(job.dataset, job.dataset.test), list(job.dataset.protocols))
    log.ranks(evaluation.ranks)
    return evaluation.metrics


def evaluate_checkpoint(
    job: Job,
    checkpoint: Path,
    registry: Registry,
    catalog: DataCatalog,
    cache: FeatureCache,
    dataset: DatasetEntry,
) -> dict[str, float]:
    """Rebuild `job`'s model, load its trained weights, and evaluate on `dataset`'s test split."""
    from harness import checkpoints

    built = build_job(job, registry, catalog, cache)
    checkpoints.load_weights(built.model, checkpoint)
    split = catalog.split(dataset, dataset.test)
    for protocol in dataset.protocols:
        PROTOCOLS[protocol].check(split)
    return _evaluate(job, built, split, list(dataset.protocols)).metrics


class _LazyComponent:
    """Builds a backbone on first attribute access: cached features never load the model."""

    def __init__(self, build: Any) -> None:
        self._build = build
        self._target: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._target is None:
            self._target = self._build()
        return getattr(self._target, name)

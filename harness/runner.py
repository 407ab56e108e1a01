"""Running an experiment: preflight every dataset, then each job in its own MLflow child run.

A job builds its components through the registry, trains through the recipe's stages (if any),
evaluates on the test split, and logs. Data problems are found before the parent run exists, so
bad input leaves nothing behind in MLflow; a job that fails while running is recorded as failed
and the remaining jobs still run.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.errors import UserError
from harness.experiment.config import ComponentRef, DatasetEntry
from harness.experiment.jobs import Job
from harness.features import CachedTextBackbone, FeatureCache, split_image_features
from harness.interfaces import BuildContext, RetrievalSplit
from harness.plugin_manager import PluginHost
from harness.registry import Registry


@dataclass
class DataCatalog:
    """Datasets and their splits, each loaded (and validated) once per experiment run."""

    registry: Registry
    source: str
    _splits: dict[tuple[str, str], RetrievalSplit] = field(default_factory=dict)

    def split(self, entry: DatasetEntry, split: str) -> RetrievalSplit:
        key = (entry.name, split)
        if key not in self._splits:
            dataset = self.registry.get("dataset", entry.name).build(entry.options, f"{self.source}: datasets.{entry.name}")
            self._splits[key] = dataset.load(split)
        return self._splits[key]

    def preflight(self, jobs: list[Job]) -> None:
        """Load every split any job needs, so malformed data stops the run before it starts."""
        for job in jobs:
            if job.config.stages:
                self.split(job.dataset, job.dataset.train)
            self.split(job.dataset, job.dataset.test)


def _component(registry: Registry, kind: str, resolved: Mapping[str, Any], where: str, ctx: Any = None) -> Any:
    options = {key: value for key, value in resolved.items() if key != "name"}
    return registry.get(kind, resolved["name"]).build(options, where, ctx)


def run_job(job: Job, registry: Registry, catalog: DataCatalog, cache: FeatureCache, log: Any) -> dict[str, float]:
    """Train (if the recipe has stages) and evaluate one job; returns ``{protocol/metric: value}``."""
    import torch

    from harness.evaluation import evaluate
    from harness.training.device import resolve_device
    from harness.training.model import RetrievalModel, SplitInputs
    from harness.training.trainer import Stage, fit, seed_everything

    cfg, resolved = job.config, job.resolved
    where = f"methods.{job.label}"
    device = resolve_device(cfg.train.device)

    image_backbone = _LazyComponent(lambda: _component(registry, "image-backbone", resolved["backbones"]["image"], f"{where}.backbones.image"))
    frozen_text = CachedTextBackbone(
        lambda: _component(registry, "text-backbone", resolved["backbones"]["text"], f"{where}.backbones.text"), cache
    )
    test_split = catalog.split(job.dataset, job.dataset.test)
    train_split = catalog.split(job.dataset, job.dataset.train) if cfg.stages else None
    test_features = split_image_features(test_split, image_backbone, cache)
    seed_everything(job.seed)  # after feature extraction, which may or may not run (cache), draws numbers
    ctx = BuildContext(
        image_feature_shapes={name: tuple(array.shape[1:]) for name, array in test_features.items()},
        train_captions=train_split.captions if train_split is not None else (),
        frozen_text=frozen_text,
        seed=job.seed,
    )
    model = RetrievalModel(
        _component(registry, "image-encoder", resolved["image_encoder"], f"{where}.image_encoder", ctx),
        _component(registry, "text-encoder", resolved["text_encoder"], f"{where}.text_encoder", ctx),
        _component(registry, "similarity-head", resolved["similarity_head"], f"{where}.similarity_head", ctx),
    )

    def inputs(split: RetrievalSplit, features: Mapping[str, Any]) -> SplitInputs:
        return SplitInputs(
            image_features=features,
            text_inputs=model.text_encoder.prepare(split.captions),
            image_of_caption=torch.as_tensor(split.image_of_caption),
        )

    if train_split is not None:
        stages = [
            Stage(
                name=name,
                epochs=stage.epochs,
                loss=_component(registry, "loss", resolved["stages"][name]["loss"], f"{where}.stages.{name}.loss", ctx),
                lr=stage.lr,
                restart=stage.restart,
            )
            for name, stage in cfg.stages.items()
        ]
        train_inputs = inputs(train_split, split_image_features(train_split, image_backbone, cache))
        fit(model, train_inputs, stages, cfg.train, device, on_epoch=log.epoch)
    return evaluate(
        model.to(device),
        inputs(test_split, test_features),
        list(job.dataset.protocols),
        batch_size=cfg.train.eval_batch_size,
        chunk=cfg.train.score_chunk,
        device=device,
    )


class _LazyComponent:
    """Builds a backbone on first attribute access: cached features never load the model."""

    def __init__(self, build: Any) -> None:
        self._build = build
        self._target: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._target is None:
            self._target = self._build()
        return getattr(self._target, name)


@dataclass
class ExperimentOutcome:
    """What `run_experiment` reports: the parent run, finished and failed jobs."""

    parent_run_id: str
    finished: list[tuple[Job, dict[str, float]]]
    failed: list[tuple[Job, str]]


def run_experiment(
    name: str,
    source: Path,
    jobs: list[Job],
    host: PluginHost,
    tracker: Any,
    cache: FeatureCache,
) -> ExperimentOutcome:
    """Run every job under one parent MLflow run; failures are recorded and the rest go on."""
    catalog = DataCatalog(host.registry, str(source))
    catalog.preflight(jobs)
    versions = {info.name: info.version for info in host.plugins.values() if not info.error}
    finished, failed = [], []
    with tracker.experiment_run(name, source, versions) as parent:
        for index, job in enumerate(jobs, start=1):
            print(f"[{index}/{len(jobs)}] {job.title}  config {job.config_hash}", file=sys.stderr)
            host.hook.before_job(job=job)
            try:
                with tracker.job_run(job) as log:
                    metrics = run_job(job, host.registry, catalog, cache, log)
                    log.metrics(metrics)
            except UserError:
                raise
            except Exception as exc:  # one failing job must not take the grid down
                traceback.print_exc(file=sys.stderr)
                failed.append((job, f"{type(exc).__name__}: {exc}"))
                continue
            host.hook.after_job(job=job, metrics=metrics)
            finished.append((job, metrics))
        return ExperimentOutcome(parent.info.run_id, finished, failed)

"""Running one job: assemble it, train its stages, checkpoint it, evaluate it, log it.

Which process runs a job, and under which parent run, is the business of the experiment driver
and the executors; this module only needs the job, the plugins' registry, the data catalog, the
feature cache and a `JobLog` to record into.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from harness.config.experiment_file import DatasetEntry
from harness.features import FeatureCache
from harness.job.assemble import assemble
from harness.job.catalog import DataCatalog, protocols_of
from harness.job.inputs import JobData
from harness.job.job import Job
from harness.job.prefilter import FinishedRuns, prefilter_of
from harness.registry import Registry


def run_job(
    job: Job, registry: Registry, catalog: DataCatalog, cache: FeatureCache, log: Any, runs: FinishedRuns | None = None
) -> dict[str, float]:
    """Train (if the recipe has stages), checkpoint and evaluate one job; ``{protocol/metric: value}``.

    `log` records epochs, the checkpoint and the per-query ranks (`harness.tracking.JobLog`);
    `runs` is the experiment's store, where a re-rank finds the run its candidates come from.
    """
    from harness.evaluation.evaluate import evaluate_split
    from harness.job import checkpoints
    from harness.training.device import resolve_device
    from harness.training.trainer import fit

    data = JobData(job, registry, catalog, cache)
    built = assemble(job, registry, data.context())
    if job.trains:
        device = resolve_device(job.config.train.device)
        built.model.to(device)
        fit(built.model, data.training_inputs(built.model), built.stages, job.config.train, device, on_epoch=log.epoch, samples=built.samples)
    with tempfile.TemporaryDirectory() as folder:
        log.checkpoint(checkpoints.save(built.model, job, Path(folder)))
    split, inputs = data.test_inputs(built.model)
    protocols = protocols_of(registry, job.dataset, f"methods.{job.label}")
    prefilter = prefilter_of(job, job.dataset, runs, registry, catalog, cache)
    evaluation = evaluate_split(built.model, inputs, protocols, job.config.eval, split.caption_tags, prefilter)
    log.ranks(evaluation.ranks)
    return evaluation.metrics


def evaluate_checkpoint(
    job: Job,
    checkpoint: Path,
    registry: Registry,
    catalog: DataCatalog,
    cache: FeatureCache,
    dataset: DatasetEntry,
    runs: FinishedRuns | None = None,
) -> dict[str, float]:
    """Rebuild `job`'s model, load its trained weights, and evaluate on `dataset`'s test split
    (`runs`: the experiment's store, for a re-rank that borrows another run's candidates)."""
    from harness.evaluation.evaluate import evaluate_split
    from harness.job import checkpoints

    data = JobData(job, registry, catalog, cache)
    built = assemble(job, registry, data.context())
    checkpoints.load_weights(built.model, checkpoint)
    split, inputs = data.test_inputs(built.model, dataset)
    protocols = protocols_of(registry, dataset, "itr eval: --protocol")
    for protocol in protocols.values():
        protocol.check(split)
    prefilter = prefilter_of(job, dataset, runs, registry, catalog, cache)
    return evaluate_split(built.model, inputs, protocols, job.config.eval, prefilter=prefilter).metrics

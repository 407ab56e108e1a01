"""Running one job: assemble it, train its stages, checkpoint it, evaluate it, log it.

Which process runs a job, and under which parent run, is the business of the experiment driver
and the executors; this module only needs the job, the plugins' registry, the data catalog, the
feature cache and a `JobLog` to record into.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.config.experiment_file import DatasetEntry
from harness.features import FeatureCache
from harness.job.assemble import assemble
from harness.job.catalog import DataCatalog, protocols_of
from harness.job.inputs import JobData
from harness.job.job import Job
from harness.job.prefilter import FinishedRuns, prefilter_of
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.training.resume_point import ResumeFile

TRAIN_SECONDS = "train_seconds"
"""How long the job trained, logged beside the evaluation's ``eval_seconds``."""


def run_job(
    job: Job,
    registry: Registry,
    catalog: DataCatalog,
    cache: FeatureCache,
    log: Any,
    runs: FinishedRuns | None = None,
    resume: ResumeFile | None = None,
) -> dict[str, float]:
    """Train (if the recipe has stages), checkpoint and evaluate one job; ``{protocol/metric: value}``.

    `log` records the splits read, epochs, the training time, the devices of training and
    evaluation, the checkpoint and the per-query ranks (`harness.tracking.JobLog`);
    `runs` is the experiment's store, where a re-rank finds the run its candidates come from.
    `resume` is where training writes its resume points; holding one (`ResumeFile.state`), the
    job goes on from it in the run that wrote it (`harness.job.resumption`): the splits and the
    epochs that run logged already are not logged again.
    """
    from harness.evaluation.evaluate import evaluate_split
    from harness.evaluation.protocols import bind_protocols
    from harness.evaluation.rankings import rankings_of
    from harness.job import checkpoints
    from harness.job.parallel import fit_data_parallel
    from harness.training.device import resolve_device
    from harness.training.trainer import fit

    continuing = resume is not None and resume.state is not None
    if not continuing:
        log_datasets(job, catalog, log)
    data = JobData(job, registry, catalog, cache)
    built = assemble(job, registry, data.context())
    if job.trains:
        device = resolve_device(job.config.train.device)
        built.model.to(device)
        started = time.perf_counter()
        inputs = data.training_inputs(built.model)
        on_epoch = _unlogged_epochs(log) if continuing else log.epoch
        if job.config.train.processes > 1:
            fit_data_parallel(job, registry, catalog, cache, built, inputs, device, on_epoch, resume)
        else:
            fit(built.model, inputs, built.stages, job.config.train, device, on_epoch=on_epoch, samples=built.samples, resume=resume)
        log.metrics({TRAIN_SECONDS: time.perf_counter() - started})
        log.device("train", device)
    with tempfile.TemporaryDirectory() as folder:
        log.checkpoint(checkpoints.save(built.model, job, Path(folder)))
    split, inputs = data.test_inputs(built.model)
    protocols = bind_protocols(protocols_of(registry, job.dataset, f"methods.{job.label}"), split)
    prefilter = prefilter_of(job, job.dataset, runs, registry, catalog, cache)
    evaluation = evaluate_split(built.model, inputs, protocols, job.config.eval, split.caption_tags, prefilter)
    log.device("eval", resolve_device(job.config.eval.device, "eval.device"))
    log.ranks(evaluation.ranks)
    if job.config.eval.rankings_top_k:
        log.rankings(rankings_of(evaluation.scored, protocols, split, job.config.eval.rankings_top_k))
    return evaluation.metrics


def _unlogged_epochs(log: Any) -> Callable[[str, int, Any], None]:
    """`log.epoch` for the epochs the continued run does not hold yet: an epoch logged just
    before the kill, after the last resume point, is trained again but logged once."""
    logged = log.epochs_logged()

    def on_epoch(stage: str, epoch: int, record: Any) -> None:
        if epoch not in logged:
            log.epoch(stage, epoch, record)

    return on_epoch


def log_datasets(job: Job, catalog: DataCatalog, log: Any) -> None:
    """Record the splits the job reads as its run's inputs (MLflow's ``training`` and ``testing``
    contexts), before it starts: a job that fails still says what data it read."""
    entry = job.dataset
    used = ([("training", entry.train)] if job.trains else []) + [("testing", entry.test)]
    for context, split in used:
        log.dataset(entry, catalog.split(entry, split), context, catalog.data_source(entry, split))


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
    from harness.evaluation.protocols import bind_protocols
    from harness.job import checkpoints

    data = JobData(job, registry, catalog, cache)
    built = assemble(job, registry, data.context())
    checkpoints.load_weights(built.model, checkpoint)
    split, inputs = data.test_inputs(built.model, dataset)
    protocols = protocols_of(registry, dataset, "itr eval: --protocol")
    for protocol in protocols.values():
        protocol.check(split)
    protocols = bind_protocols(protocols, split)
    prefilter = prefilter_of(job, dataset, runs, registry, catalog, cache)
    return evaluate_split(built.model, inputs, protocols, job.config.eval, prefilter=prefilter).metrics

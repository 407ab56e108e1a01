"""A re-rank's candidates from another method: the global embeddings of a finished run.

With ``eval.mode = "rerank"`` and ``eval.prefilter = "<label>"``, a job's expensive head scores
only the candidates that another method of the same experiment ranks highest (VSE∞ picking
SCAN's candidates, as ITC feeds ITM in ALBEF). That method's finished run is rebuilt from its
checkpoint and embeds the job's test split; it must have been evaluated on the same split.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import UserError
from harness.features import FeatureCache
from harness.job.catalog import DataCatalog
from harness.registry import Registry

if TYPE_CHECKING:
    import torch

    from harness.config.experiment_file import DatasetEntry
    from harness.job.job import Job


class FinishedRuns(Protocol):
    """Where a job finds the finished runs of its experiment (the tracking store:
    `harness.tracking.ExperimentRuns`)."""

    def checkpoint(self, label: str, entry: "DatasetEntry", seed: int, folder: Path) -> tuple[str, Path]:
        """(run id, checkpoint folder under `folder`) of the newest finished run of cell `label`
        on `entry`'s dataset, the run of `seed` first; a UserError when there is none or it was
        evaluated on another split than ``entry.test``."""


def borrowed_prefilter(
    job: "Job", entry: "DatasetEntry", runs: FinishedRuns | None, registry: Registry, catalog: DataCatalog, cache: FeatureCache
) -> "tuple[torch.Tensor, torch.Tensor]":
    """Global vectors (images, captions) of `entry`'s test split from the newest finished run of
    the job's prefilter label on that dataset (the job's own seed first)."""
    from harness.evaluation.scoring import embed_split
    from harness.evaluation.strategies import global_vectors
    from harness.job import checkpoints
    from harness.job.assemble import assemble
    from harness.job.inputs import JobData
    from harness.job.job import Job
    from harness.training.device import resolve_device

    label, where = job.config.eval.prefilter, "eval.prefilter"
    if runs is None:
        raise UserError(f"{where} '{label}': needs the MLflow store of the experiment; evaluate a run id, not a checkpoint folder")
    with tempfile.TemporaryDirectory() as scratch:
        run_id, folder = runs.checkpoint(label, entry, job.seed, Path(scratch))
        provider = Job.from_record(checkpoints.read_job(folder), f"{where} '{label}' (run {run_id})")
        data = JobData(provider, registry, catalog, cache)
        built = assemble(provider, registry, data.context())
        checkpoints.load_weights(built.model, folder)
    _, inputs = data.test_inputs(built.model, entry)
    cfg = job.config.eval
    device = resolve_device(cfg.device, "eval.device")
    images, texts = embed_split(built.model.to(device), inputs, cfg.batch_size, device, cfg.amp)
    return global_vectors(images), global_vectors(texts)


def prefilter_of(job: "Job", entry: "DatasetEntry", runs: Any, registry: Registry, catalog: DataCatalog, cache: FeatureCache) -> Any:
    """The borrowed prefilter vectors when the job's evaluation asks for them, else None."""
    return borrowed_prefilter(job, entry, runs, registry, catalog, cache) if job.config.eval.borrows_prefilter else None

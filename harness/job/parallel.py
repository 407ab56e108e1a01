"""A job trained data-parallel: this process is rank 0, the harness starts the other ranks.

``train.processes = N`` trains one job in N processes (`harness.training.distributed`): one per
GPU on CUDA (NCCL, GPU r for rank r), or N CPU processes with gloo. The other ranks are started
here with the ``spawn`` method; each loads the plugins, the data and the job again from the job's
record, builds the same model from the same seed and trains its share of every batch. Only
rank 0 logs epochs, checkpoints and evaluates; the others end when training does.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from harness.errors import UserError
from harness.training.threads import job_threads

RENDEZVOUS_TIMEOUT = timedelta(minutes=10)
"""How long a collective waits for a rank that went silent before the job fails."""


@dataclass(frozen=True)
class RankPayload:
    """What another rank needs to rebuild the job (picklable)."""

    record: dict[str, Any]
    host_options: dict[str, Any]
    source: str
    cache_root: str
    rendezvous: str
    processes: int
    device_type: str
    resume_path: str | None = None


def fit_data_parallel(
    job: Any, registry: Any, catalog: Any, cache: Any, built: Any, inputs: Any, device: torch.device, on_epoch: Any, resume: Any = None
) -> list[dict[str, float]]:
    """Train `built` (rank 0's model, on `device`) with `job.config.train.processes` processes.

    Rank 0 writes the resume points (`resume`); a resumed job's other ranks read the same point,
    and take rank 0's random states from it (their own streams are not kept: a resumed
    data-parallel run is as valid as an uninterrupted one, not bit-identical to it)."""
    import torch.multiprocessing as mp

    from harness.training.distributed import World
    from harness.training.trainer import fit

    processes = job.config.train.processes
    if device.type == "cuda" and torch.cuda.device_count() < processes:
        raise UserError(f"methods.{job.label}.train.processes: {processes} processes need {processes} GPUs, this machine has {torch.cuda.device_count()}")
    with tempfile.TemporaryDirectory() as folder:
        payload = RankPayload(
            record=job.to_record(),
            host_options=dict(registry.host_options),
            source=catalog.source,
            cache_root=str(cache.root),
            rendezvous=f"file://{Path(folder) / 'rendezvous'}",
            processes=processes,
            device_type=device.type,
            resume_path=str(resume.path) if resume is not None and resume.state is not None else None,
        )
        others = mp.start_processes(_other_rank, args=(payload,), nprocs=processes - 1, join=False, start_method="spawn")
        try:
            _join_group(payload, 0)
            history = fit(
                built.model, inputs, built.stages, job.config.train, device, on_epoch=on_epoch, samples=built.samples, world=World(0, processes), resume=resume
            )
            torch.distributed.destroy_process_group()
        except BaseException:
            for process in others.processes:
                process.terminate()
            raise
        try:
            while not others.join():
                pass
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1]
            raise RuntimeError(f"a data-parallel rank of {job.label} failed: {last}") from None
    return history


def _join_group(payload: RankPayload, rank: int) -> None:
    backend = "nccl" if payload.device_type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend, init_method=payload.rendezvous, rank=rank, world_size=payload.processes, timeout=RENDEZVOUS_TIMEOUT)


def _other_rank(index: int, payload: RankPayload) -> None:
    """Rank index + 1: the job rebuilt from its record, trained on its share, nothing logged."""
    from harness.features import FeatureCache
    from harness.job.assemble import assemble
    from harness.job.catalog import DataCatalog
    from harness.job.inputs import JobData
    from harness.job.job import Job
    from harness.plugin_manager import PluginHost
    from harness.progress import silence
    from harness.training.distributed import World
    from harness.training.resume_point import ResumeFile, read_point
    from harness.training.trainer import fit

    rank = index + 1
    silence()
    torch.set_num_threads(job_threads(payload.processes))
    host = PluginHost(**payload.host_options)
    job = Job.from_record(payload.record, "data-parallel rank")
    data = JobData(job, host.registry, DataCatalog(host.registry, payload.source), FeatureCache(Path(payload.cache_root)))
    built = assemble(job, host.registry, data.context())
    device = torch.device("cuda", rank) if payload.device_type == "cuda" else torch.device("cpu")
    inputs = data.training_inputs(built.model)
    point = read_point(Path(payload.resume_path)) if payload.resume_path else None
    resume = ResumeFile(Path(payload.resume_path), 0, point[0], point[1], writes=False) if point else None
    _join_group(payload, rank)
    fit(built.model, inputs, built.stages, job.config.train, device, samples=built.samples, world=World(rank, payload.processes), resume=resume)
    torch.distributed.destroy_process_group()

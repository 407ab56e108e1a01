"""Local worker processes: one fresh Python process per job, N at a time.

A fresh process per job keeps jobs independent (no leaked global state, memory returned to the
system after each job) and lets one machine run several jobs at once. With GPUs, worker slot k
sees only GPU k mod n_gpus through ``CUDA_VISIBLE_DEVICES`` (GPUs kN … kN + N − 1 for a job
trained by N data-parallel processes). Each worker's output goes to its
own log file (named in the error when a job fails).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from harness.errors import UserError
from harness.executors.tickets import JobOutcome, JobTicket, Session

POLL_SECONDS = 0.2


@dataclass
class _Running:
    ticket: JobTicket
    process: subprocess.Popen
    slot: int
    ticket_path: Path
    outcome_path: Path
    log_path: Path
    log: IO[bytes]


class LocalWorkers:
    """Runs each job in a fresh worker process, at most `workers` at once.

    Options:
        workers: concurrent worker processes (default 2). On CPU, each worker's torch uses
            about cores / workers threads.
    """

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise UserError(f"executor 'local': workers must be ≥ 1 (got {workers})")
        self.workers = workers

    def run(self, tickets: Sequence[JobTicket], session: Session) -> None:
        gpus = visible_gpus()
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        log_dir = Path(session.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        waiting, running = list(tickets), []
        try:
            while waiting or running:
                free = sorted(set(range(self.workers)) - {job.slot for job in running})
                while waiting and free:
                    ticket = waiting.pop(0)
                    session.started(ticket)
                    running.append(_start(ticket, free.pop(0), gpus, threads, log_dir))
                time.sleep(POLL_SECONDS)
                for job in [job for job in running if job.process.poll() is not None]:
                    running.remove(job)
                    job.log.close()
                    session.finished(job.ticket, _outcome(job))
        finally:
            for job in running:  # the driver was interrupted: stop the workers with it
                job.process.kill()
                job.process.wait()
                job.log.close()


def visible_gpus() -> list[str]:
    """The GPU ids this process may hand out: $CUDA_VISIBLE_DEVICES if set, else all CUDA devices."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu for gpu in listed.split(",") if gpu.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def slot_gpus(slot: int, processes: int, gpus: list[str]) -> str:
    """``CUDA_VISIBLE_DEVICES`` of worker slot `slot` for a job trained by `processes` processes:
    GPUs slot·processes … slot·processes + processes − 1, modulo the GPUs there are (so use
    workers × processes ≤ GPUs for a GPU of its own per process)."""
    return ",".join(gpus[(slot * processes + k) % len(gpus)] for k in range(processes)) if gpus else ""


def _start(ticket: JobTicket, slot: int, gpus: list[str], threads: int, log_dir: Path) -> _Running:
    stem = f"{ticket.index:04d}-{ticket.job.config_hash}"
    ticket_path, outcome_path, log_path = (log_dir / f"{stem}{suffix}" for suffix in (".ticket.json", ".outcome.json", ".log"))
    ticket_path.write_text(ticket.to_json(), encoding="utf-8")
    outcome_path.unlink(missing_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["CUDA_VISIBLE_DEVICES"] = slot_gpus(slot, ticket.job.config.train.processes, gpus)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.executors.worker", str(ticket_path), str(outcome_path)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    return _Running(ticket, process, slot, ticket_path, outcome_path, log_path, log)


def _outcome(job: _Running) -> JobOutcome:
    """The worker's reported outcome (its ticket and outcome files removed; the log stays)."""
    job.ticket_path.unlink(missing_ok=True)
    if not job.outcome_path.is_file():
        return JobOutcome(error=f"worker process exited with code {job.process.returncode} before reporting; log: {job.log_path}")
    outcome = JobOutcome.from_json(job.outcome_path.read_text(encoding="utf-8"))
    job.outcome_path.unlink()
    if outcome.error:
        outcome.error += f" (log: {job.log_path})"
    return outcome

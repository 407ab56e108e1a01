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
WORKER_GRACE_SECONDS = 10.0
"""How long a stopped driver waits for its workers to close their runs before killing them."""


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
        workers: concurrent worker processes (default 2).
        threads: torch threads of each worker (default: the usable cores / workers, as
            `harness.training.threads.job_threads` has it).
    """

    def __init__(self, workers: int = 2, threads: int | None = None) -> None:
        if workers < 1:
            raise UserError(f"executor 'local': workers must be ≥ 1 (got {workers})")
        if threads is not None and threads < 1:
            raise UserError(f"executor 'local': threads must be ≥ 1 (got {threads})")
        self.workers, self.threads = workers, threads

    def run(self, tickets: Sequence[JobTicket], session: Session) -> None:
        gpus = visible_gpus()
        from harness.training.threads import job_threads

        threads = job_threads(self.workers, self.threads)
        log_dir = Path(session.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        waiting, running = list(tickets), []
        try:
            while (waiting and not session.stopped) or running:
                free = sorted(set(range(self.workers)) - {job.slot for job in running})
                while waiting and free and not session.stopped:
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
                job.process.terminate()  # a worker closes its run KILLED on SIGTERM (harness.termination)
            for job in running:
                try:
                    job.process.wait(timeout=WORKER_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
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

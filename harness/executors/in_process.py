"""The default executor: one job after another in the driver's process."""

from __future__ import annotations

from typing import Sequence

from harness.errors import UserError
from harness.executors.tickets import JobTicket, Session


class InProcess:
    """Runs the jobs sequentially in this process, sharing loaded datasets and backbones
    between jobs: the fastest choice on one machine with one device.

    Options:
        threads: torch threads of each job (default: the one job's share of the usable cores,
            as `harness.training.threads.job_threads` has it, and never more than torch had:
            ``OMP_NUM_THREADS`` or its own default); the driver's count is restored after each job.
    """

    def __init__(self, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise UserError(f"executor 'in-process': threads must be ≥ 1 (got {threads})")
        self.threads = threads

    def run(self, tickets: Sequence[JobTicket], session: Session) -> None:
        import torch

        from harness.training.threads import job_threads, torch_threads

        threads = self.threads or min(job_threads(1), torch.get_num_threads())
        for ticket in tickets:
            if session.stopped:
                return
            session.started(ticket)
            with torch_threads(threads):
                outcome = session.run_here(ticket)
            session.finished(ticket, outcome)

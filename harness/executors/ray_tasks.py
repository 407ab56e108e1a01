"""Ray: each job a Ray task with its resource needs, on a local or remote Ray cluster.

Install with ``pip install 'itr-harness[ray]'``. Every node needs the same plugins installed and
the dataset paths and feature cache reachable under the same names (a shared file system), and
the tracking URI must be a server or database every node can reach (an ``http://`` MLflow
server on a cluster; a SQLite file only when all tasks run on the driver's machine).
"""

from __future__ import annotations

from typing import Any, Sequence

from harness.errors import UserError
from harness.executors.tickets import JobOutcome, JobTicket, Session


def _run_ticket_json(ticket_json: str) -> str:
    """The Ray task: a ticket in, an outcome out, both as JSON (nothing to pickle but text)."""
    from harness.executors.worker import run_ticket

    return run_ticket(JobTicket.from_json(ticket_json)).to_json()


class RayTasks:
    """Submits every job as a Ray task and collects outcomes as they finish.

    Options:
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None starts a local
            Ray instance for this run.
        num_cpus: CPUs each job reserves (default 1).
        num_gpus: GPUs each job reserves (default 0; 1 on a GPU cluster); a data-parallel job
            (``train.processes = N``) reserves N times as many, on one node.
        max_concurrent: at most this many jobs at once (default: what the resources allow).
    """

    def __init__(
        self, address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0, max_concurrent: int | None = None
    ) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError("executor 'ray' needs Ray: pip install 'itr-harness[ray]'") from None
        if num_cpus < 0 or num_gpus < 0 or (max_concurrent is not None and max_concurrent < 1):
            raise UserError("executor 'ray': num_cpus and num_gpus must be ≥ 0 and max_concurrent ≥ 1")
        self.address, self.num_cpus, self.num_gpus, self.max_concurrent = address, num_cpus, num_gpus, max_concurrent

    def run(self, tickets: Sequence[JobTicket], session: Session) -> None:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        task = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(_run_ticket_json)
        waiting, running = list(tickets), {}
        limit = self.max_concurrent or len(tickets)
        try:
            while (waiting and not session.stopped) or running:
                while waiting and len(running) < limit and not session.stopped:
                    ticket = waiting.pop(0)
                    session.started(ticket)
                    gpus = self.num_gpus * ticket.job.config.train.processes
                    running[task.options(num_gpus=gpus).remote(ticket.to_json())] = ticket
                [done], _ = ray.wait(list(running), num_returns=1)
                ticket = running.pop(done)
                session.finished(ticket, _outcome(ray, done))
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()


def _outcome(ray: Any, ref: Any) -> JobOutcome:
    try:
        return JobOutcome.from_json(ray.get(ref))
    except Exception as exc:  # the task's process died (out of memory, node lost)
        return JobOutcome(error=f"Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")

"""Running one ticket, in whichever process holds it; ``python -m harness.executors.worker``.

A worker process reads its ticket from a file, runs the job with the plugins it finds installed
(plus the driver's ``--plugins-dir``), logs the child run under the driver's parent run, and
writes its outcome to a second file, replaced atomically, so the driver never reads half of it.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from harness.atomic import write_text_atomically
from harness.executors.tickets import JobOutcome, JobTicket

EpochCallback = Callable[[str, int, Any], None]


def run_ticket(
    ticket: JobTicket,
    host: Any = None,
    catalog: Any = None,
    cache: Any = None,
    on_epoch: EpochCallback | None = None,
) -> JobOutcome:
    """Run one job and log it; any failure becomes the outcome's error (the run is FAILED).

    `host`, `catalog` and `cache` are the driver's when it runs the ticket itself; a worker
    builds its own.
    """
    from harness.features import FeatureCache
    from harness.job.catalog import DataCatalog
    from harness.job.run import run_job
    from harness.plugin_manager import PluginHost
    from harness.tracking import ExperimentRuns, Tracker

    if host is None:
        plugins_dir = Path(ticket.plugins_dir) if ticket.plugins_dir else None
        host = PluginHost(strict=ticket.strict_plugins, plugins_dir=plugins_dir)
    catalog = catalog or DataCatalog(host.registry, ticket.source)
    cache = cache or FeatureCache(Path(ticket.cache_dir) if ticket.cache_dir else None)
    tracker = Tracker.attach(ticket.tracking_uri, ticket.experiment_id)
    outcome = JobOutcome()
    try:
        with tracker.job_run(ticket.job, ticket.parent_run_id) as log:
            outcome.run_id = log.run_id
            runs = ExperimentRuns(ticket.tracking_uri, ticket.experiment_id)
            metrics = run_job(ticket.job, host.registry, catalog, cache, _EpochTee(log, on_epoch), runs)
            log.metrics(metrics)
    except Exception as exc:  # one failing job must not take the grid down
        traceback.print_exc(file=sys.stderr)
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    outcome.metrics = {key: float(value) for key, value in metrics.items()}
    return outcome


class _EpochTee:
    """The job's log, with each epoch also reported to a progress callback."""

    def __init__(self, log: Any, on_epoch: EpochCallback | None) -> None:
        self._log, self._on_epoch = log, on_epoch

    def epoch(self, stage: str, epoch: int, record: Any) -> None:
        self._log.epoch(stage, epoch, record)
        if self._on_epoch is not None:
            self._on_epoch(stage, epoch, record)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def main(argv: list[str]) -> int:
    """``worker TICKET_FILE OUTCOME_FILE``: exit 0 when the outcome was written (even a failed job)."""
    ticket_path, outcome_path = Path(argv[0]), Path(argv[1])
    outcome = run_ticket(JobTicket.from_json(ticket_path.read_text(encoding="utf-8")))
    write_text_atomically(outcome_path, outcome.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

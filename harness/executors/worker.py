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
from harness.errors import UserError
from harness.executors.tickets import JobOutcome, JobTicket

EpochCallback = Callable[[str, int, Any], None]


def run_ticket(
    ticket: JobTicket,
    host: Any = None,
    catalog: Any = None,
    cache: Any = None,
    on_epoch: EpochCallback | None = None,
) -> JobOutcome:
    """Run one job and log it; any failure becomes the outcome's error (the run is FAILED), a
    `UserError` as its one line, anything else with its traceback on stderr.

    `host`, `catalog` and `cache` are the driver's when it runs the ticket itself; a worker
    builds its own. A job with a resume point goes on from it in the KILLED run that wrote it
    (`harness.job.resumption`); the point is removed once the job finished or failed.
    """
    from harness.features import FeatureCache
    from harness.job.catalog import DataCatalog
    from harness.job.resumption import Resumption
    from harness.job.run import run_job
    from harness.plugin_manager import PluginHost
    from harness.lease import CellHeld
    from harness.tracking import ExperimentRuns, Tracker
    from harness.tracking_retry import TrackingUnavailable

    if host is None:
        plugins_dir = Path(ticket.plugins_dir) if ticket.plugins_dir else None
        host = PluginHost(strict=ticket.strict_plugins, plugins_dir=plugins_dir)
    catalog = catalog or DataCatalog(host.registry, ticket.source)
    cache = cache or FeatureCache(Path(ticket.cache_dir) if ticket.cache_dir else None)
    tracker = Tracker.attach(ticket.tracking_uri, ticket.experiment_id)
    outcome, resumption = JobOutcome(), Resumption(None)
    try:
        pending_dir = Path(ticket.pending_dir) if ticket.pending_dir else None
        resumption = Resumption.find(ticket.resume_dir, ticket.job, tracker)
        with tracker.job_run(ticket.job, ticket.parent_run_id, pending_dir, ticket.count_finished, resumption.run_id) as log:
            outcome.run_id = log.run_id
            runs = ExperimentRuns(ticket.tracking_uri, ticket.experiment_id)
            metrics = run_job(ticket.job, host.registry, catalog, cache, _EpochTee(log, on_epoch), runs, resumption.points(log.run_id))
            log.metrics(metrics)
    except CellHeld as held:
        outcome.held_by = held.run_id
        return outcome
    except TrackingUnavailable as exc:  # before anything could be kept: the job did not run
        outcome.tracking_error = str(exc)
        return outcome
    except UserError as exc:  # bad input or a setting to change (e.g. out of memory): one line
        resumption.discard()
        outcome.error = str(exc)
        return outcome
    except Exception as exc:  # one failing job must not take the grid down
        resumption.discard()
        traceback.print_exc(file=sys.stderr)
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    resumption.discard()
    outcome.metrics = {key: float(value) for key, value in metrics.items()}
    if log.kept is not None:  # the store stopped answering: the results wait for upload
        outcome.kept_at, outcome.tracking_error = str(log.kept[0]), log.kept[1]
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
    from harness.termination import EXIT_TERMINATED, Terminated, sigterm_stops

    ticket_path, outcome_path = Path(argv[0]), Path(argv[1])
    try:
        with sigterm_stops():  # preempted: the job's run is closed KILLED, its resume point stays
            outcome = run_ticket(JobTicket.from_json(ticket_path.read_text(encoding="utf-8")))
    except Terminated:
        return EXIT_TERMINATED
    write_text_atomically(outcome_path, outcome.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

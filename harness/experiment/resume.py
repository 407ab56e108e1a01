"""Resume: which of an experiment's jobs already finished, and closing runs whose process died.

A job is found by its config hash, so rerunning an interrupted grid runs only what is missing,
and a job left RUNNING by a process that died is closed as KILLED and run again. Several drivers
may share a store: a RUNNING run is closed only once its lease expired (`harness.lease`), so a
second driver on the same grid leaves the first one's live runs alone.
"""

from __future__ import annotations

from typing import Any, Sequence

from harness.job.job import Job
from harness.lease import is_live
from harness.tracking import EXPERIMENT_KIND


def close_interrupted_runs(tracker: Any, jobs: Sequence[Job], parent_run_id: str) -> dict[str, str]:
    """Config hash -> run id of this experiment's finished jobs; RUNNING experiment runs of
    earlier invocations and RUNNING runs of the planned jobs whose lease expired (their process
    died) are closed as KILLED."""
    for run in tracker.runs(EXPERIMENT_KIND):
        if run.info.status == "RUNNING" and run.info.run_id != parent_run_id and not is_live(run):
            tracker.mark_interrupted(run.info.run_id)
    planned = {job.config_hash for job in jobs}
    finished = {}
    for run in tracker.runs():
        config_hash = run.data.tags.get("itr.config_hash")
        if run.info.status == "FINISHED":
            finished.setdefault(config_hash, run.info.run_id)
        elif run.info.status == "RUNNING" and config_hash in planned and not is_live(run):
            tracker.mark_interrupted(run.info.run_id)
    return finished

"""Resume: which of an experiment's jobs already finished, and closing runs whose process died.

A job is found by its config hash, so rerunning an interrupted grid runs only what is missing,
and a job left RUNNING by a killed process is closed as KILLED and run again. One driver per
experiment and store at a time is assumed.
"""

from __future__ import annotations

from typing import Any, Sequence

from harness.job.job import Job
from harness.tracking import EXPERIMENT_KIND


def close_interrupted_runs(tracker: Any, jobs: Sequence[Job], parent_run_id: str) -> dict[str, str]:
    """Config hash -> run id of this experiment's finished jobs; RUNNING leftovers of the
    planned jobs and of earlier invocations (their process was killed) are closed as KILLED.
    One driver per experiment and store at a time is assumed."""
    for run in tracker.runs(EXPERIMENT_KIND):
        if run.info.status == "RUNNING" and run.info.run_id != parent_run_id:
            tracker.mark_interrupted(run.info.run_id)
    planned = {job.config_hash for job in jobs}
    finished = {}
    for run in tracker.runs():
        config_hash = run.data.tags.get("itr.config_hash")
        if run.info.status == "FINISHED":
            finished.setdefault(config_hash, run.info.run_id)
        elif run.info.status == "RUNNING" and config_hash in planned and run.data.tags.get("mlflow.parentRunId") != parent_run_id:
            tracker.mark_interrupted(run.info.run_id)
    return finished

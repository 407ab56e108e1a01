"""Which earlier run a job continues: its resume point, found again by config hash.

A job's training writes resume points to ``<resume folder>/<config hash>.pt``
(`harness.training.resume_point`; the folder is the experiment's ``results/<name>/resume``).
When the job is run again, after its process was preempted (SIGTERM: the run was closed KILLED
at once) or killed outright (SIGKILL: the next invocation closed the RUNNING leftover KILLED),
the point names the run it belongs to, and the job goes on from the point *in that run*. A
point whose run is gone, belongs to another experiment or configuration, or did not end KILLED
(it finished, or failed) is ignored, with a line saying so: the job starts afresh in a new run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.job.job import Job

if TYPE_CHECKING:
    from harness.training.resume_point import ResumeFile


@dataclass
class Resumption:
    """A job's resume point file and, if it continues one, the earlier run and where it stopped.

    Attributes:
        path: the job's resume point file (None: the job writes none, e.g. outside `itr run`).
        every: `TrainConfig.resume_every`.
        run_id: the KILLED run the job continues; None for a fresh run.
        state: the point it continues from; None for a fresh run.
    """

    path: Path | None
    every: int = 0
    config_hash: str = ""
    run_id: str | None = None
    state: dict[str, Any] | None = None

    @classmethod
    def find(cls, folder: str | Path | None, job: Job, tracker: Any) -> "Resumption":
        """The job's resumption: its point under `folder`, checked against `tracker`'s store."""
        from harness.training.resume_point import read_point

        if folder is None:
            return cls(None)
        resumption = cls(Path(folder) / f"{job.config_hash}.pt", job.config.train.resume_every, job.config_hash)
        found = read_point(resumption.path) if job.trains else None
        if found is None:
            return resumption
        owner, state = found
        problem = _why_not_continued(tracker, owner, job)
        if problem is not None:
            print(f"note: {job.title}: resume point {resumption.path} ignored ({problem}); starting afresh", file=sys.stderr)
            return resumption
        resumption.run_id, resumption.state = owner["run_id"], state
        print(f"note: {job.title}: continues run {resumption.run_id} from {resumption.where()}", file=sys.stderr)
        return resumption

    def points(self, run_id: str) -> ResumeFile | None:
        """Where run `run_id` writes its points, holding the one it continues from."""
        from harness.training.resume_point import ResumeFile

        if self.path is None:
            return None
        return ResumeFile(self.path, self.every, {"config_hash": self.config_hash, "run_id": run_id}, self.state)

    def where(self) -> str:
        """Where the continued run stopped, in words (``stage main, epoch 3, batch 0``)."""
        if self.state is None:
            return "the beginning"
        history = self.state["history"]
        return f"stage {self.state['stage'] + 1}, epoch {len(history) + 1}, batch {self.state['step']} (step {self.state['steps']})"

    def discard(self) -> None:
        """Remove the point: the job ended (finished or failed) and a rerun starts afresh."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _why_not_continued(tracker: Any, owner: dict[str, str], job: Job) -> str | None:
    """Why the point's run cannot be continued by `job`, or None if it can."""
    from mlflow.exceptions import MlflowException

    if owner.get("config_hash") != job.config_hash:
        return "it belongs to another configuration"
    try:
        run = tracker.client.get_run(owner["run_id"])
    except MlflowException:
        return f"its run {owner['run_id']} no longer exists in {tracker.tracking_uri}"
    if run.info.experiment_id != tracker.experiment_id_ or run.data.tags.get("itr.config_hash") != job.config_hash:
        return f"its run {owner['run_id']} belongs to another experiment or configuration"
    if run.info.status != "KILLED":
        return f"its run {owner['run_id']} is {run.info.status}, not KILLED"
    return None

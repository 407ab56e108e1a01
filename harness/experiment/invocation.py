"""One `itr run`: plan the file, choose the executor and the store, run the unfinished jobs,
publish the leaderboard."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.experiment.driver import ExperimentOutcome


@dataclass(frozen=True)
class RunRequest:
    """What the user asked `itr run` for."""

    experiment_file: Path
    results_dir: Path
    tracking_uri: str | None = None
    cache_dir: Path | None = None
    executor: str | None = None
    workers: int | None = None
    executor_options: Mapping[str, Any] = field(default_factory=dict)
    rerun_finished: bool = False
    plugins_dir: Path | None = None
    strict_plugins: bool = False


@dataclass(frozen=True)
class RunResult:
    outcome: ExperimentOutcome
    leaderboard: Any
    cache_root: Path
    cache_hits: int
    cache_misses: int


def run_file(host: Any, request: RunRequest) -> RunResult:
    """Run the unfinished jobs of `request.experiment_file`, log them, publish the leaderboard."""
    from harness.executors.choice import choose_executor
    from harness.experiment.driver import Launch, run_experiment
    from harness.experiment.plan import plan
    from harness.features import FeatureCache
    from harness.pending_uploads import pending_folder
    from harness.publish import publish_leaderboard
    from harness.tracking import Tracker, choose_tracking_uri, require_reachable

    experiment, jobs = plan(request.experiment_file, host.registry)
    executor = choose_executor(host.registry, request.executor, request.workers, request.executor_options)
    uri = choose_tracking_uri(request.tracking_uri, experiment.tracking_uri, request.results_dir)
    require_reachable(uri)
    cache = FeatureCache(request.cache_dir)
    launch = Launch(
        source=request.experiment_file,
        log_dir=request.results_dir / experiment.name / "logs",
        cache_dir=cache.root,
        plugins_dir=request.plugins_dir,
        strict_plugins=request.strict_plugins,
        rerun_finished=request.rerun_finished,
        pending_dir=pending_folder(request.results_dir, experiment.name),
        resume_dir=(request.results_dir / experiment.name / "resume").resolve(),
    )
    outcome = run_experiment(experiment, jobs, host, Tracker(uri, request.results_dir), cache, executor, launch)
    published = publish_leaderboard(host.observers, uri, experiment.name, request.results_dir, parent_run_id=outcome.parent_run_id)
    return RunResult(outcome, published, cache.root, cache.hits, cache.misses)

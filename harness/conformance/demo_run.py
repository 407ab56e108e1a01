"""A one-epoch experiment on the embedded `coco-demo` set, in process, into a given MLflow store.

For a plugin's own test suite: it proves a method (or a component swapped into one) trains,
evaluates, checkpoints and logs through the real runner on real data, in seconds. Every stage of
the recipe is cut to `epochs` (default 1); any other key can be overridden as in an experiment
file (dotted keys or nested tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.config.dotted import deep_merge, nest

DEMO_DATASET = "coco-demo"


@dataclass(frozen=True)
class MlflowStore:
    """A local MLflow store: an SQLite file with the artifacts beside it, under `root`."""

    root: Path

    @property
    def uri(self) -> str:
        return f"sqlite:///{(self.root / 'mlflow.db').resolve()}"

    def client(self) -> Any:
        import mlflow

        return mlflow.MlflowClient(self.uri)

    def runs(self, experiment: str, filter_string: str = "") -> list[Any]:
        """All runs of `experiment` (the parent and its jobs), newest first."""
        client = self.client()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        return client.search_runs([found.experiment_id], filter_string=filter_string, max_results=1000)


@dataclass(frozen=True)
class DemoRun:
    """What a one-epoch demo job left behind.

    Attributes:
        label: the method's label in the experiment (its name).
        metrics: ``{"full/rsum": ..., "full/i2t_r1": ..., ...}`` as logged.
        run_id: the job's MLflow child run (its checkpoint is an artifact of it).
        config_hash: the job's config hash.
        store: the MLflow store it was logged to.
    """

    label: str
    metrics: dict[str, float]
    run_id: str
    config_hash: str
    store: MlflowStore

    def loss_history(self) -> list[float]:
        """Mean training loss per epoch, in order."""
        history = self.store.client().get_metric_history(self.run_id, "train/loss")
        return [m.value for m in sorted(history, key=lambda m: m.step)]


def one_epoch_overrides(registry: Any, method: str, overrides: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """The recipe's stages cut to `epochs` each, under the caller's own overrides."""
    recipe = registry.get("method", nest(overrides).get("method", method)).load()
    stages = {name: {"epochs": epochs} for name in recipe.defaults.get("stages", {})}
    return deep_merge({"stages": stages} if stages else {}, nest(overrides))


def run_demo_job(
    method: str,
    store: MlflowStore,
    *,
    overrides: Mapping[str, Any] | None = None,
    epochs: int = 1,
    seed: int = 0,
    plugins: Iterable[Any] = (),
    host: Any = None,
    cache_dir: Path | None = None,
    experiment: str = "itr-demo-run",
) -> DemoRun:
    """Train `method` for `epochs` per stage on coco-demo, evaluate it, log it; return the result.

    The experiment is planned and driven in this process exactly as ``itr run`` would run a
    file with this one method block (in-process executor); its definition is kept with the
    parent run (``experiment/experiment.json``).

    Args:
        method: a registered method recipe (``vse++``), or a label when overrides set ``method``.
        store: where the runs are logged.
        overrides: experiment-file keys, e.g. ``{"stages.main.loss.name": "my-loss"}``.
        plugins: plugin modules or objects to register besides the installed ones (a plugin
            under development that is not installed yet).
        host: a ready `PluginHost` (default: a new one with the installed plugins and `plugins`).
        cache_dir: the feature cache (default: ``$ITR_CACHE_DIR`` or ~/.cache/itr-harness/features).

    Raises:
        AssertionError: the job failed (its error in the message); bad input raises UserError.
    """
    from harness.config.experiment_file import ExperimentFile
    from harness.experiment.driver import Launch, run_experiment
    from harness.experiment.plan import expand_jobs
    from harness.features import FeatureCache
    from harness.plugin_manager import PluginHost
    from harness.tracking import Tracker

    host = host if host is not None else PluginHost(extra_plugins=list(plugins))
    block = one_epoch_overrides(host.registry, method, dict(overrides or {}), epochs)
    definition = ExperimentFile(name=experiment, seeds=[seed], datasets=[{"name": DEMO_DATASET}], methods={method: block})
    jobs = expand_jobs(definition, host.registry, f"demo run {experiment}")
    cache = FeatureCache(cache_dir)
    executor = host.registry.get("executor", "in-process").build({}, f"demo run {experiment}: executor")
    store.root.mkdir(parents=True, exist_ok=True)
    launch = Launch(source=None, log_dir=store.root / experiment / "logs", cache_dir=cache.root, rerun_finished=True)
    outcome = run_experiment(definition, jobs, host, Tracker(store.uri, store.root), cache, executor, launch)
    if outcome.failed:
        job, error = outcome.failed[0]
        raise AssertionError(f"demo job {job.title} failed: {error}")
    [(job, metrics)] = outcome.finished
    [child] = store.runs(
        experiment,
        f"tags.`itr.config_hash` = '{job.config_hash}' and tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'",
    )
    return DemoRun(job.label, dict(metrics), child.info.run_id, job.config_hash, store)

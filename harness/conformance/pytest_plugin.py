"""pytest fixtures for plugin authors, loaded by pytest through the ``pytest11`` entry point.

Installing itr-harness makes these fixtures available in any test suite (disable them with
``-p no:itr_harness``):

- ``itr_synthetic``: tiny deterministic inputs (`harness.conformance.synthetic.SyntheticData`):
  ``.context()`` (a `BuildContext` for your factory), ``.image_features(n)``, ``.captions(n)``,
  ``.loss_batch(b, extra_columns=g)`` (scores [B, B + g] and image ids), ``.global_embeddings(n, dim)``,
  ``.vector_sets(n, dim, summary=True)``, ``.retrieval_split(n_images)``.
- ``itr_check``: ``itr_check("loss:my-loss", temperature=0.05)`` runs the contract checks of
  `itr check` on a registered component or method and returns the `Report`;
  ``.assert_ok()`` fails the test with the table. ``plugins=[module]`` adds a plugin that is
  not installed yet.
- ``itr_mlflow_store``: a throw-away MLflow store (SQLite in the test's tmp dir), also set as
  ``MLFLOW_TRACKING_URI`` for the test; ``.uri``, ``.client()``, ``.runs(experiment)``.
- ``itr_demo_run``: ``itr_demo_run("vse++", overrides={...})`` trains a method one epoch per
  stage on the embedded coco-demo set, evaluates, checkpoints and logs it into
  ``itr_mlflow_store``; returns a `DemoRun` (``.metrics``, ``.run_id``, ``.loss_history()``).
- ``itr_plugin_host``: the installed plugins (one `PluginHost` per session).

Nothing heavy is imported until a fixture is used: this module loads in every pytest session of
every project installed beside itr-harness.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping

import pytest


@pytest.fixture(scope="session")
def itr_plugin_host() -> Any:
    """The installed itr-harness plugins (entry points), loaded once per session."""
    from harness.plugin_manager import PluginHost

    return PluginHost()


@pytest.fixture
def itr_synthetic() -> Any:
    """Tiny deterministic inputs for components (`SyntheticData`, seed 0)."""
    from harness.conformance.synthetic import SyntheticData

    return SyntheticData(seed=0)


@pytest.fixture
def itr_check(itr_plugin_host: Any) -> Callable[..., Any]:
    """``itr_check(target, options=None, *, plugins=(), seed=0, **options) -> Report``.

    `target` is ``kind:name`` or a name; component options are keywords, method overrides may
    be dotted (``options={"similarity_head.embed_dim": 32}``).
    """
    from harness.conformance import run_checks
    from harness.plugin_manager import PluginHost

    def check(
        target: str,
        options: Mapping[str, Any] | None = None,
        *,
        plugins: Iterable[Any] = (),
        seed: int = 0,
        **keyword_options: Any,
    ) -> Any:
        extra = list(plugins)
        host = PluginHost(extra_plugins=extra) if extra else itr_plugin_host
        return run_checks(host.registry, target, {**dict(options or {}), **keyword_options}, seed=seed)

    return check


@pytest.fixture
def itr_mlflow_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh MLflow store for one test, set as the tracking URI while the test runs."""
    from harness.conformance.demo_run import MlflowStore

    store = MlflowStore(tmp_path_factory.mktemp("mlflow"))
    store.root.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    yield store
    _restore_tracking_uri(previous)


def _restore_tracking_uri(previous: str | None) -> None:
    """Undo `mlflow.set_tracking_uri` calls made during the test (the runner's tracker makes one)."""
    import sys

    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        mlflow.set_tracking_uri(previous)  # None restores mlflow's own default


@pytest.fixture
def itr_demo_run(itr_mlflow_store: Any, itr_plugin_host: Any) -> Callable[..., Any]:
    """``itr_demo_run(method, *, overrides=None, epochs=1, seed=0, plugins=()) -> DemoRun``:
    a real one-epoch job on coco-demo, logged to `itr_mlflow_store`."""
    from harness.conformance.demo_run import run_demo_job

    def run(method: str, *, overrides: Mapping[str, Any] | None = None, epochs: int = 1, seed: int = 0, plugins: Iterable[Any] = ()) -> Any:
        extra = list(plugins)
        host = None if extra else itr_plugin_host
        return run_demo_job(
            method, itr_mlflow_store, overrides=overrides, epochs=epochs, seed=seed, plugins=extra, host=host
        )

    return run

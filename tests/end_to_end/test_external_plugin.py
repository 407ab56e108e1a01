"""A third-party plugin package, installed with pip, adds a loss that trains in a real run,
passes `itr check`, and passes its own test suite written with the harness's pytest fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT, itr_in_process, metric_history, run_itr, search_runs

TEMPLATE = REPO_ROOT / "tests" / "fixtures" / "plugin_template"

EXPERIMENT = """
name = "plugin-loss"
[[datasets]]
name = "coco-demo"
[methods.vse-infonce]
method = "vse++"
text_encoder.min_count = 1
image_encoder.embed_dim = 256
text_encoder.embed_dim = 256
train.batch_size = 32
stages.main.epochs = 3
stages.main.loss.name = "example-infonce"
stages.main.loss.temperature = 0.05
"""


@pytest.fixture(scope="module")
def plugin_package(tmp_path_factory):
    """A new plugin package made from the template, as a plugin author starts one: a copy."""
    package = tmp_path_factory.mktemp("package") / "itr-example-loss"
    shutil.copytree(TEMPLATE, package, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    return package


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory, plugin_package):
    """The package installed by pip into its own folder, put on the path like site-packages."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(plugin_package)],
        check=True, capture_output=True, text=True,
    )
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def test_installed_plugin_shows_up_in_itr_plugins(plugin_env):
    out = run_itr("plugins", env=plugin_env)
    assert out.code == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("example-loss"))
    assert "0.1.0" in line and "loss:example-infonce" in line


def test_plugin_loss_trains_in_a_run(plugin_env, tmp_path):
    experiment = tmp_path / "plugin.toml"
    experiment.write_text(EXPERIMENT)
    results = tmp_path / "results"
    out = run_itr("run", str(experiment), "--results-dir", str(results), env=plugin_env)
    assert out.code == 0, out.stderr[-3000:]
    assert "vse-infonce" in out.stdout
    [job] = search_runs(results, "plugin-loss", "tags.`itr.kind` = 'job'").to_dict("records")
    assert job["tags.itr.component.losses"] == "example-infonce"
    assert job["params.stages.main.loss.temperature"] == "0.05"
    assert len(metric_history(results, job["run_id"], "train/loss")) == 3


def test_without_the_plugin_the_loss_is_unknown(tmp_path):
    """This process never had the package on its path: the plan runs here (`itr_in_process`)."""
    experiment = tmp_path / "plugin.toml"
    experiment.write_text(EXPERIMENT)
    out = itr_in_process("plan", str(experiment))
    assert out.code == 2
    assert "unknown loss 'example-infonce'" in out.stderr


def test_installed_plugin_passes_itr_check(plugin_env):
    out = run_itr("check", "loss:example-infonce", env=plugin_env)
    assert out.code == 0, out.stdout + out.stderr[-2000:]
    assert "loss:example-infonce" in out.stdout and "FAIL" not in out.stdout
    assert "0 failed" in out.stderr


def test_the_plugin_package_passes_its_own_tests_with_the_harness_fixtures(plugin_env, plugin_package):
    inherited = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=plugin_package,
        env={**inherited, **plugin_env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "3 passed" in proc.stdout

"""A third-party plugin package, installed with pip, adds a loss that trains in a real run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT, metric_history, run_itr, search_runs

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
def plugin_env(tmp_path_factory):
    """The template installed by pip into its own folder, put on the path like site-packages."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(TEMPLATE)],
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
    experiment = tmp_path / "plugin.toml"
    experiment.write_text(EXPERIMENT)
    out = run_itr("plan", str(experiment))
    assert out.code == 2
    assert "unknown loss 'example-infonce'" in out.stderr

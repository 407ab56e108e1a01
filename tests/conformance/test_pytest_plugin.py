"""The pytest plugin's fixtures, used here exactly as a plugin author's test suite uses them."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import torch

from tests.conformance import toy_components
from tests.helpers import REPO_ROOT

LAZY_PROBE = """
import sys
import harness.conformance.pytest_plugin
print(",".join(sorted(m for m in ("torch", "transformers", "mlflow", "pydantic") if m in sys.modules)))
"""


def test_the_plugin_module_imports_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", LAZY_PROBE], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == ""


def test_synthetic_batches_build_and_feed_a_component(itr_synthetic):
    from baselines.vse.encoders import GRUTextEncoder

    encoder = GRUTextEncoder(itr_synthetic.context(), embed_dim=8, word_dim=4, min_count=1)
    inputs = encoder.prepare(itr_synthetic.captions(5))
    assert encoder(inputs).shape == (5, 8)
    scores, image_ids = itr_synthetic.loss_batch(6)
    assert scores.shape == (6, 6) and torch.all(scores.diagonal() == 0.9) and image_ids[1] == image_ids[2]
    assert itr_synthetic.image_features(3)["regions"].shape[0] == 3


def test_itr_check_runs_the_checks_on_an_installed_component(itr_check):
    itr_check("loss:hardest-negative-triplet", margin=0.1).assert_ok()


def test_itr_check_takes_a_plugin_that_is_not_installed(itr_check):
    report = itr_check("similarity-head:toy-batch-softmax", plugins=[toy_components])
    assert [r.check for r in report.failed] == ["leakage/batch-composition"]


def test_the_mlflow_store_is_fresh_and_is_the_tracking_uri(itr_mlflow_store):
    assert os.environ["MLFLOW_TRACKING_URI"] == itr_mlflow_store.uri
    assert itr_mlflow_store.uri.startswith("sqlite:///")
    assert itr_mlflow_store.runs("anything") == []


def test_a_one_epoch_demo_run_trains_evaluates_and_logs(itr_demo_run, itr_mlflow_store):
    run = itr_demo_run(
        "vse++",
        overrides={"text_encoder.min_count": 1, "image_encoder.embed_dim": 32, "text_encoder.embed_dim": 32, "train.batch_size": 32},
    )
    assert 0 < run.metrics["full/rsum"] <= 600
    assert len(run.loss_history()) == 1
    artifacts = {a.path for a in itr_mlflow_store.client().list_artifacts(run.run_id, "checkpoint")}
    assert "checkpoint/model.safetensors" in artifacts
    client = itr_mlflow_store.client()
    parent = client.get_run(client.get_run(run.run_id).data.tags["mlflow.parentRunId"])
    definition = mlflow.artifacts.load_dict(f"{parent.info.artifact_uri}/experiment/experiment.json")
    assert definition["methods"]["vse++"]["stages"] == {"main": {"epochs": 1}}, "the experiment is kept with its parent run"

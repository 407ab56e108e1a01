"""The `ascl` recipe through experiment files and the real command line (docs/methods/ascl.md)."""

from __future__ import annotations

import textwrap

import pytest

from harness.experiment.plan import plan
from harness.plugin_manager import PluginHost
from tests.helpers import REPO_ROOT, itr_in_process, printed_leaderboard

ABLATION = REPO_ROOT / "configs" / "ascl_ablation.toml"


@pytest.fixture(scope="module")
def registry():
    """The installed plugins, `ascl` among them, through its entry point."""
    return PluginHost().registry


def test_ascl_defaults_are_the_papers_recipe(tmp_path, registry):
    path = tmp_path / "exp.toml"
    path.write_text('name = "t"\n[[datasets]]\nname = "coco-demo"\n[methods.ascl]\n')
    [job] = plan(path, registry)[1]
    resolved = job.config.model_dump()
    assert job.components() == {
        "image_encoder": "ascl-image",
        "text_encoder": "ascl-text",
        "similarity_head": "ascl-fusion",
        "losses": "ascl-infonce",
        "generators": "truncate-half,concat-siblings,gaussian-noise,feature-dropout,token-shuffle,zero-dim-or-token",
    }
    head = resolved["similarity_head"]
    assert (head["u1"], head["global_pooling"], head["train_fusion"], head["embed_dim"]) == (0.8, "pair", True, 1024)
    generators = resolved["generators"]
    assert (generators["positive_weight"], generators["positive_mix"], generators["negative_mix"]) == (0.5, "per-caption", "per-batch")
    train = resolved["train"]
    assert (train["optimizer"], train["lr"], train["lr_schedule"], train["lr_min"], train["batch_size"], train["grad_clip"]) == (
        "adam", 5e-4, "cosine", 1e-4, 64, 2.0
    )
    assert resolved["stages"]["main"]["epochs"] == 20 and resolved["stages"]["main"]["loss"]["temperature"] == 0.1


def test_ablation_file_has_one_job_per_ablation_cell(registry):
    jobs = plan(ABLATION, registry)[1]
    cells = {job.label: job for job in jobs}
    assert set(cells) == {
        "ascl-full", "ascl-no-generated", "ascl-positives-only", "ascl-negatives-only", "ascl-local-only", "ascl-global-only"
    }
    assert cells["ascl-no-generated"].components()["generators"] == "-"
    assert not cells["ascl-positives-only"].config.model_dump()["generators"]["negatives"]
    assert not cells["ascl-negatives-only"].config.model_dump()["generators"]["positives"]
    assert cells["ascl-local-only"].config.model_dump()["similarity_head"]["u1"] == 1.0
    assert cells["ascl-global-only"].config.model_dump()["similarity_head"]["u1"] == 0.0


@pytest.mark.slow
def test_ascl_trains_and_ranks_the_demo_set_through_the_cli(tmp_path):
    """Two epochs of one batch each show the recipe trains (its schedule steps from one epoch to
    the next) and ranks through the command line, run in this process (`itr_in_process`): an
    AsCL batch takes seconds on a CPU, and the demo (tests/end_to_end/test_demo.py) trains it
    for 5 whole epochs."""
    experiment = tmp_path / "exp.toml"
    experiment.write_text(
        textwrap.dedent(
            """
            name = "ascl-e2e"
            [[datasets]]
            name = "coco-demo"
            [methods.ascl]
            image_encoder.embed_dim = 128
            text_encoder.embed_dim = 128
            similarity_head.embed_dim = 128
            train.batch_size = 32
            train.steps_per_epoch = 1
            stages.main.epochs = 2
            """
        )
    )
    out = itr_in_process(
        "run", str(experiment), "--results-dir", str(tmp_path / "results")
    )
    assert out.code == 0, out.stderr[-3000:]
    assert printed_leaderboard(out.stdout)["coco-demo / full"] == ["ascl"]
    assert "training: epoch 2/2, stage main 2/2" in out.stderr

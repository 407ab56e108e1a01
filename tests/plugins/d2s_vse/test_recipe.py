"""The `d2s-vse` recipe: its defaults, its two stages trained with real components, the ablation
file, and a run through the real command line, in this process (`itr_in_process`, seconds faster
than a fresh interpreter) (docs/methods/d2s-vse.md)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from harness.config.job_config import TrainConfig
from harness.experiment.plan import plan
from harness.interfaces import BuildContext, RetrievalSplit
from harness.plugin_manager import PluginHost
from harness.training.model import RetrievalModel, SplitInputs, prepare_texts
from harness.training.trainer import Stage, fit
from tests.helpers import REPO_ROOT, itr_in_process, metric_history, printed_leaderboard, search_runs

ABLATION = REPO_ROOT / "configs" / "d2s_ablation.toml"


@pytest.fixture(scope="module")
def registry():
    """The installed plugins, `d2s-vse` among them, through its entry point."""
    return PluginHost().registry


def test_d2s_defaults_are_the_public_codes_recipe(tmp_path, registry):
    path = tmp_path / "exp.toml"
    path.write_text('name = "t"\n[[datasets]]\nname = "coco-demo"\n[methods.d2s-vse]\n')
    [job] = plan(path, registry)[1]
    resolved = job.config.model_dump()
    assert job.components()["text_encoder"] == "d2s-text" and job.components()["losses"] == "d2s-triplet,d2s-distill"
    assert list(resolved["stages"]) == ["dense", "sparse"]
    dense, sparse = resolved["stages"]["dense"], resolved["stages"]["sparse"]
    assert (dense["text"], dense["epochs"], dense["loss"]["warmup_epochs"]) == ("dense", 30, 1)
    assert (sparse["text"], sparse["epochs"], sparse["restart"]) == ("captions", 30, True)
    loss = sparse["loss"]
    assert (loss["margin"], loss["align_weight"], loss["distill_weight"], loss["distance"], loss["teacher_text"], loss["teacher_mode"]) == (
        0.2, 1.0, 1.0, "cosine", "dense", "eval"
    )
    text = resolved["text_encoder"]
    assert (text["embed_dim"], text["num_tokens"], text["decoder_depth"], text["decoder_heads"], text["normalize_decoder_at_eval"]) == (
        512, 100, 4, 4, False
    )
    assert resolved["image_encoder"]["embed_dim"] == 512 and resolved["texts"]["dense"]["name"] == "dense-text"
    train = resolved["train"]
    assert (train["optimizer"], train["lr"], train["weight_decay"], train["lr_schedule"], train["lr_milestones"], train["lr_decay"]) == (
        "adamw", 2e-4, 1e-4, "multistep", [9, 15, 20, 25], 0.3
    )


def test_ablation_file_has_one_job_per_ablation_cell(registry):
    cells = {job.label: job.config.model_dump() for job in plan(ABLATION, registry)[1]}
    assert set(cells) == {
        "d2s-full", "d2s-no-stage1", "d2s-no-distill", "d2s-align-only", "d2s-stage1-only",
        "d2s-tokens-5", "d2s-tokens-50", "d2s-depth-1", "d2s-depth-4",
    }
    assert cells["d2s-no-stage1"]["stages"]["dense"]["epochs"] == 0
    assert cells["d2s-no-distill"]["stages"]["sparse"]["loss"]["distill_weight"] == 0
    assert cells["d2s-stage1-only"]["stages"]["sparse"]["epochs"] == 0 and cells["d2s-stage1-only"]["text_encoder"]["num_tokens"] == 0
    assert [cells[f"d2s-tokens-{n}"]["text_encoder"]["num_tokens"] for n in (5, 50)] == [5, 50]
    assert [cells[f"d2s-depth-{n}"]["text_encoder"]["decoder_depth"] for n in (1, 4)] == [1, 4]


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


@pytest.fixture(scope="module")
def two_stages(registry):
    """One stage-1 epoch and one stage-2 epoch of the recipe's real components on a toy split
    (6 images of 4 random 8-d regions, 2 captions each, the captions stand-in as dense text),
    with snapshots of the weights at each boundary."""
    split = RetrievalSplit(
        dataset="toy",
        split="train",
        image_ids=tuple(str(k) for k in range(6)),
        captions=tuple(f"{colour} {animal} {verb}" for colour, animal in zip(["a red", "a blue", "a green", "two grey", "a pink", "an old"],
                                                                                ["dog", "cat", "bird", "horses", "pig", "goat"])
                       for verb in ("runs", "sleeps on the grass")),
        image_of_caption=np.repeat(np.arange(6), 2),
    )
    ctx = BuildContext(image_feature_shapes={"regions": (4, 8)}, train_captions=split.captions, frozen_text=None)

    def build(kind, name, **options):
        return registry.get(kind, name).build(options, "test", ctx)

    torch.manual_seed(0)
    model = RetrievalModel(
        build("image-encoder", "vse-inf-region", embed_dim=16, mlp_hidden=8),
        build("text-encoder", "d2s-text", embed_dim=16, num_tokens=2, decoder_depth=1, decoder_heads=2),
        build("similarity-head", "cosine"),
    )
    dense_texts = registry.get("text-source", "dense-text").build({}, "test").image_texts(split)
    data = SplitInputs(
        {"regions": torch.randn(6, 4, 8, generator=torch.Generator().manual_seed(1)).numpy()},
        prepare_texts(model.text_encoder, split.captions, "captions"),
        torch.as_tensor(split.image_of_caption),
        split.captions,
        image_texts={"dense": prepare_texts(model.text_encoder, dense_texts, "dense")},
    )
    distill = build("loss", "d2s-distill")
    snapshots = {"initial": state(model)}
    begin = distill.begin_stage

    def spy(m):
        snapshots["stage 2 start"] = state(m)
        begin(m)

    distill.begin_stage = spy
    stages = [Stage("dense", 1, build("loss", "d2s-triplet"), text="dense"), Stage("sparse", 1, distill)]
    fit(model, data, stages, TrainConfig(batch_size=4, optimizer="adamw", lr=1e-3), torch.device("cpu"),
        on_epoch=lambda stage, epoch, record: snapshots.setdefault(f"after {stage}", state(model)))
    return model, distill, snapshots


def test_stage_one_trains_the_model(two_stages):
    _, _, snapshots = two_stages
    assert not same(snapshots["after dense"], snapshots["initial"])


def test_stage_two_starts_from_stage_ones_weights(two_stages):
    _, _, snapshots = two_stages
    assert same(snapshots["stage 2 start"], snapshots["after dense"])


def test_the_teacher_is_stage_ones_text_encoder_and_does_not_change_during_stage_two(two_stages):
    _, distill, snapshots = two_stages
    stage_one_text = {name.removeprefix("text_encoder."): value for name, value in snapshots["after dense"].items() if name.startswith("text_encoder.")}
    assert same(state(distill.teacher), stage_one_text)


def test_the_teacher_receives_no_gradient_while_the_student_trains(two_stages):
    model, distill, snapshots = two_stages
    assert all(not p.requires_grad and p.grad is None for p in distill.teacher.parameters())
    student = {name: value for name, value in state(model).items() if name.startswith("text_encoder.")}
    assert not same(student, {name: snapshots["after dense"][name] for name in student})
    assert not torch.equal(model.text_encoder.decoder.tokens, snapshots["after dense"]["text_encoder.decoder.tokens"])


def test_the_teacher_is_not_part_of_the_model(two_stages):
    model, _, _ = two_stages
    assert not any("teacher" in name for name in model.state_dict())


@pytest.mark.slow
def test_d2s_vse_trains_both_stages_and_ranks_the_demo_set_through_the_cli(tmp_path):
    experiment = tmp_path / "exp.toml"
    experiment.write_text(
        textwrap.dedent(
            """
            name = "d2s-e2e"
            [[datasets]]
            name = "coco-demo"
            [methods.d2s-vse]
            image_encoder.embed_dim = 64
            text_encoder = { embed_dim = 64, num_tokens = 4, decoder_depth = 1 }
            train.batch_size = 32
            stages.dense.epochs = 1
            stages.sparse.epochs = 2
            """
        )
    )
    results = tmp_path / "results"
    out = itr_in_process("run", str(experiment), "--results-dir", str(results))
    assert out.code == 0, out.stderr[-3000:]
    assert printed_leaderboard(out.stdout)["coco-demo / full"] == ["d2s-vse"]
    runs = search_runs(results, "d2s-e2e")
    [job] = runs[runs["tags.itr.kind"] == "job"].to_dict("records")
    assert job["status"] == "FINISHED" and job["params.stages.dense.text"] == "dense"
    assert len(metric_history(results, job["run_id"], "train/dense/loss")) == 1
    assert len(metric_history(results, job["run_id"], "train/sparse/loss")) == 2
    assert len(metric_history(results, job["run_id"], "train/loss")) == 3
    assert len(metric_history(results, job["run_id"], "train/distill")) == 2  # stage 2 only

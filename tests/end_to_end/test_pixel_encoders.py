"""Encoders that read pixels, end to end on the demo set: a fine-tuned ViT (`hf-vision`), CLIP
zero-shot and fine-tuned, and EfficientNet-Lite0 fine-tuned from its real weights; the ViT and
CLIP checkpoints are tiny random ones written with ``save_pretrained``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import itr_in_process, metric_history, search_runs
from tests.tiny_models import tiny_dual_encoder, tiny_text_model, tiny_vit

EXPERIMENT = """
name = "pixels"
[[datasets]]
name = "coco-demo"

[methods.vit]
method = "vse++"
image_encoder = {{ name = "hf-vision", model = "{vit}", embed_dim = 32, token_drop = 0.2, image_size = 48 }}
text_encoder = {{ embed_dim = 32, word_dim = 16, min_count = 1 }}
train = {{ batch_size = 32, loader_workers = 2 }}
stages.main.epochs = 2

[methods.clip]
image_encoder.model = "{clip}"
text_encoder.model = "{clip}"

[methods.clip-finetune]
image_encoder.model = "{clip}"
text_encoder.model = "{clip}"
similarity_head.model = "{clip}"
train.batch_size = 32
stages.finetune.epochs = 1

[methods.effnet]
method = "vse++"
image_encoder = {{ name = "efficientnet-lite0-ft", embed_dim = 32, image_size = 64 }}
text_encoder = {{ embed_dim = 32, word_dim = 16, min_count = 1 }}
train = {{ batch_size = 16, loader_workers = 0, steps_per_epoch = 3 }}
stages.main.epochs = 3
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    made = {name: make(folder / name) for name, make in [("vit", tiny_vit), ("clip", tiny_dual_encoder), ("bert", tiny_text_model)]}
    return {name: str(path) for name, path in made.items()}


@pytest.fixture(scope="module")
def finished(models, tmp_path_factory):
    """The four jobs, run once: (stderr, {label: job run}, results folder)."""
    folder = tmp_path_factory.mktemp("pixels")
    (folder / "pixels.toml").write_text(EXPERIMENT.format(**models))
    out = itr_in_process("run", str(folder / "pixels.toml"), "--results-dir", str(folder / "results"), "--quiet")
    assert out.code == 0, out.stderr[-3000:]
    runs = search_runs(folder / "results", "pixels", "tags.`itr.kind` = 'job'")
    return out.stderr, {row["tags.itr.label"]: row for _, row in runs.iterrows()}, folder / "results"


def test_every_pixel_job_trains_and_evaluates_without_extracting_backbone_features(finished):
    stderr, runs, _ = finished
    assert set(runs) == {"vit", "clip", "clip-finetune", "effnet"}
    for label, run in runs.items():
        assert run["status"] == "FINISHED", label
        assert 0 < run["metrics.full/rsum"] <= 600, label
    assert "0 computed in this process" in stderr, "no job of pixels ran the frozen image or text backbone"
    assert "metrics.train_seconds" not in runs["clip"] or runs["clip"].isna()["metrics.train_seconds"], "zero-shot CLIP does not train"


def test_efficientnet_fine_tuned_from_its_real_weights_lowers_its_loss(finished):
    _, runs, results = finished
    losses = metric_history(results, runs["effnet"]["run_id"], "train/loss")
    assert len(losses) == 3 and losses[2] < losses[0], losses


@pytest.mark.parametrize(
    "override, message",
    [
        ('model = "{missing}"', "image_encoder.model: no model folder"),
        ('model = "{bert}"', "image_encoder.model: {bert} holds a 'bert' model, not a vision model"),
        ('model = "{vit}", image_size = 36', "image_encoder.image_size: 36 px is not a multiple of the model's 8-px patches"),
        ('model = "{vit}", pooling = "cls", token_drop = 0.2', "image_encoder.token_drop: class-token pooling reads one token"),
    ],
)
def test_plan_refuses_a_folder_or_resolution_the_encoder_cannot_read_in_one_line(models, tmp_path, override, message):
    names = {**models, "missing": str(tmp_path / "missing")}
    experiment = tmp_path / "bad.toml"
    experiment.write_text(
        'name = "bad"\n[[datasets]]\nname = "coco-demo"\n[methods.vit]\nmethod = "vse++"\n'
        f'image_encoder = {{ name = "hf-vision", {override.format(**names)} }}\n'
    )
    out = itr_in_process("plan", str(experiment))
    assert out.code == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert f"{experiment}: methods.vit.{message.format(**names)}" in out.stderr


def test_plan_accepts_a_local_vision_model_without_loading_its_weights(models, tmp_path, monkeypatch):
    import transformers

    def no_weights(*args, **kwargs):
        raise AssertionError("plan loaded weights")

    monkeypatch.setattr(transformers.ViTModel, "from_pretrained", no_weights)
    experiment = tmp_path / "good.toml"
    experiment.write_text(f'name = "good"\n[[datasets]]\nname = "coco-demo"\n[methods.vit]\nmethod = "vse++"\nimage_encoder = {{ name = "hf-vision", model = "{models["vit"]}" }}\n')
    out = itr_in_process("plan", str(experiment))
    assert out.code == 0, out.stderr
    assert "1 jobs" in out.stdout or "1 job" in out.stdout


def test_the_fine_tuned_clip_checkpoint_holds_the_trained_towers(finished, tmp_path):
    """The job's checkpoint carries both towers and the temperature: what `itr eval` reloads."""
    import mlflow
    from safetensors.torch import load_file

    _, runs, results = finished
    client = mlflow.MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    local = client.download_artifacts(runs["clip-finetune"]["run_id"], "checkpoint", str(tmp_path))
    weights = load_file(next(Path(local).rglob("*.safetensors")))
    assert any(key.startswith("image_encoder.tower.model.vision_model") for key in weights)
    assert any(key.startswith("text_encoder.tower.model.text_model") for key in weights)
    assert weights["head.logit_scale"].shape == torch.Size([])

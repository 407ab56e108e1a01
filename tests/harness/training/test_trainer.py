"""The stage-by-stage trainer on small synthetic data."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from harness.config.job_config import TrainConfig
from harness.progress import QUIET_VARIABLE
from harness.training.model import RetrievalModel, SplitInputs
from harness.training.trainer import NonFiniteLoss, Stage, _batches, fit, lr_scales, make_optimizer, stage_lr


class Project(nn.Module):
    def __init__(self, key: str, dim_in: int, dim_out: int = 8) -> None:
        super().__init__()
        self.key, self.linear = key, nn.Linear(dim_in, dim_out)

    def forward(self, inputs):
        return nn.functional.normalize(self.linear(inputs[self.key].float()), dim=-1)


class Dot(nn.Module):
    def forward(self, images, texts):
        return images @ texts.T


class InfoNCE(nn.Module):
    def forward(self, scores, image_ids):
        return nn.functional.cross_entropy(scores / 0.1, torch.arange(len(scores)))


def toy_data(n_images: int = 16, captions_per_image: int = 2) -> SplitInputs:
    """Captions are noisy linear images of their image's features: a learnable alignment."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(n_images, 6, generator=generator)
    image_of_caption = torch.arange(n_images).repeat_interleave(captions_per_image)
    mixing = torch.randn(6, 5, generator=generator)
    captions = images[image_of_caption] @ mixing + 0.05 * torch.randn(len(image_of_caption), 5, generator=generator)
    return SplitInputs({"pooled": images.numpy()}, {"x": captions}, image_of_caption)


def toy_model() -> RetrievalModel:
    torch.manual_seed(0)
    return RetrievalModel(Project("pooled", 6), Project("x", 5), Dot())


def test_training_lowers_the_loss():
    history = fit(toy_model(), toy_data(), [Stage("main", 15, InfoNCE())], TrainConfig(batch_size=8, lr=1e-2), torch.device("cpu"))
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_stages_run_in_order_with_their_own_lr_and_continue_the_weights():
    model = toy_model()
    cfg = TrainConfig(batch_size=8, lr=1e-2, lr_decay_every=None)
    fit(model, toy_data(), [Stage("warmup", 2, InfoNCE())], cfg, torch.device("cpu"))
    after_warmup = model.image_encoder.linear.weight.detach().clone()
    history = fit(model, toy_data(), [Stage("warmup", 2, InfoNCE()), Stage("main", 1, InfoNCE(), lr=1e-4)], cfg, torch.device("cpu"))
    assert [(h["stage"], h["epoch"], h["lr"]) for h in history] == [("warmup", 0, 1e-2), ("warmup", 1, 1e-2), ("main", 2, 1e-4)]
    assert not torch.equal(model.image_encoder.linear.weight, after_warmup)


def test_a_continuing_stage_keeps_the_optimizer_and_the_schedule():
    cfg = TrainConfig(batch_size=8, lr=1e-2, lr_decay_every=2, lr_decay=0.5)
    stages = [Stage("warmup", 1, InfoNCE()), Stage("main", 3, InfoNCE(), restart=False)]
    history = fit(toy_model(), toy_data(), stages, cfg, torch.device("cpu"))
    assert [h["lr"] for h in history] == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3])


def test_a_submodule_lr_scale_trains_its_parameters_slower():
    model = toy_model()
    model.text_encoder.lr_scale = 0.1
    scales = lr_scales(model)
    assert scales["text_encoder.linear.weight"] == 0.1 and scales["image_encoder.linear.weight"] == 1.0
    optimizer = make_optimizer(model, TrainConfig(), lr=1e-3)
    assert sorted(group["lr"] for group in optimizer.param_groups) == pytest.approx([1e-4, 1e-3])


def test_step_decay_multiplies_the_lr_every_n_epochs():
    cfg = TrainConfig(lr_decay_every=15, lr_decay=0.1)
    assert [stage_lr(2e-4, epoch, cfg) for epoch in (0, 14, 15, 29, 30)] == pytest.approx([2e-4, 2e-4, 2e-5, 2e-5, 2e-6])


def test_cosine_schedule_anneals_to_lr_min_over_the_schedule():
    cfg = TrainConfig(lr_schedule="cosine", lr_min=1e-4)
    lrs = [stage_lr(5e-4, epoch, cfg, schedule_length=20) for epoch in (0, 10, 20)]
    assert lrs == pytest.approx([5e-4, 3e-4, 1e-4])


def test_non_finite_loss_stops_the_job():
    class Exploding(nn.Module):
        def forward(self, scores, image_ids):
            return scores.sum() * float("nan")

    with pytest.raises(NonFiniteLoss, match="stage 'main' epoch 1"):
        fit(toy_model(), toy_data(), [Stage("main", 1, Exploding())], TrainConfig(batch_size=8), torch.device("cpu"))


def test_epoch_callback_sees_every_epoch():
    seen = []
    fit(toy_model(), toy_data(), [Stage("main", 3, InfoNCE())], TrainConfig(batch_size=8), torch.device("cpu"),
        on_epoch=lambda stage, epoch, record: seen.append((stage, epoch, sorted(record))))
    assert seen == [("main", e, ["loss", "lr"]) for e in range(3)]


def test_in_a_log_each_epoch_is_a_line_counting_the_whole_job(capsys, monkeypatch):
    monkeypatch.setenv(QUIET_VARIABLE, "")
    stages = [Stage("warmup", 1, InfoNCE()), Stage("main", 2, InfoNCE(), lr=1e-3)]
    fit(toy_model(), toy_data(), stages, TrainConfig(batch_size=8, lr=1e-2), torch.device("cpu"))
    lines = capsys.readouterr().err.splitlines()  # pytest's captured stderr is no terminal
    assert [line.split(", loss ")[0] for line in lines] == [
        "training: epoch 1/3, stage warmup 1/1",
        "training: epoch 2/3, stage main 1/2",
        "training: epoch 3/3, stage main 2/2",
    ]
    tails = [re.search(r", loss \d+\.\d{4}, lr (\S+), elapsed \d+s, eta (\d+)s$", line) for line in lines]
    assert all(tails), lines
    assert [tail[1] for tail in tails] == ["1.00e-02", "1.00e-03", "1.00e-03"]
    assert tails[-1][2] == "0", "no time is left after the last epoch"


def test_quiet_training_prints_nothing(capsys, monkeypatch):
    monkeypatch.setenv(QUIET_VARIABLE, "1")
    fit(toy_model(), toy_data(), [Stage("main", 2, InfoNCE())], TrainConfig(batch_size=8), torch.device("cpu"))
    assert capsys.readouterr().err == ""


def test_a_lone_last_caption_is_not_a_batch():
    batches = _batches(9, 4)
    assert [len(b) for b in batches] == [4, 4]
    assert sorted(torch.cat(batches).tolist()) != list(range(9))
    assert [len(b) for b in _batches(10, 4)] == [4, 4, 2]


def test_steps_per_epoch_caps_every_epoch_at_that_many_batches():
    class CountingInfoNCE(InfoNCE):
        steps = 0

        def forward(self, scores, image_ids):
            CountingInfoNCE.steps += 1
            return super().forward(scores, image_ids)

    fit(toy_model(), toy_data(n_images=40), [Stage("main", 3, CountingInfoNCE())], TrainConfig(batch_size=8, steps_per_epoch=2), torch.device("cpu"))
    assert CountingInfoNCE.steps == 3 * 2, "80 captions make 10 batches an epoch; 2 of them run"

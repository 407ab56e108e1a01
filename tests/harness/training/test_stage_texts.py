"""What a stage trains on and what its loss may see: text sources, the training batch, stage hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.errors import UserError
from harness.config.job_config import TrainConfig
from harness.training.model import RetrievalModel, SplitInputs, prepare_texts
from harness.training.trainer import Stage, fit, stage_lr

N_IMAGES, CAPTIONS_PER_IMAGE = 12, 3


class Project(nn.Module):
    def __init__(self, key: str, dim_in: int) -> None:
        super().__init__()
        self.key, self.linear = key, nn.Linear(dim_in, 8)

    def forward(self, inputs):
        return nn.functional.normalize(self.linear(inputs[self.key].float()), dim=-1)


class Dot(nn.Module):
    def forward(self, images, texts):
        return images @ texts.T


class Recorder(nn.Module):
    """InfoNCE that keeps what the trainer hands it."""

    reads_batch = True

    def __init__(self) -> None:
        super().__init__()
        self.batches, self.begun = [], []

    def begin_stage(self, model):
        self.begun.append(model.image_encoder.linear.weight.detach().clone())

    def forward(self, scores, image_ids, *, batch):
        self.batches.append(batch)
        return nn.functional.cross_entropy(scores / 0.1, torch.arange(len(scores)))


def toy_data() -> SplitInputs:
    """Captions x [36, 5] and a dense text source {"dense": {"x": [12, 5]}}: row k of the dense
    source is 100 + k, so a test can tell which image a row belongs to."""
    generator = torch.Generator().manual_seed(0)
    image_of_caption = torch.arange(N_IMAGES).repeat_interleave(CAPTIONS_PER_IMAGE)
    dense = (100 + torch.arange(N_IMAGES, dtype=torch.float32))[:, None].expand(N_IMAGES, 5).clone()
    return SplitInputs(
        {"pooled": torch.randn(N_IMAGES, 6, generator=generator).numpy()},
        {"x": torch.randn(len(image_of_caption), 5, generator=generator)},
        image_of_caption,
        image_texts={"dense": {"x": dense}},
    )


def toy_model() -> RetrievalModel:
    torch.manual_seed(0)
    return RetrievalModel(Project("pooled", 6), Project("x", 5), Dot())


CFG = TrainConfig(batch_size=5, lr=1e-2)


def test_a_stage_on_a_text_source_iterates_over_the_images_once_per_epoch():
    loss = Recorder()
    fit(toy_model(), toy_data(), [Stage("dense", 2, loss, text="dense")], CFG, torch.device("cpu"))
    first_epoch = [batch for batch in loss.batches if batch.epoch == 0]
    assert sorted(torch.cat([batch.image_ids for batch in first_epoch]).tolist()) == list(range(N_IMAGES))
    assert [batch.steps for batch in first_epoch] == [3, 3, 3] and [batch.step for batch in first_epoch] == [0, 1, 2]


def test_a_stage_on_captions_iterates_over_the_captions():
    loss = Recorder()
    fit(toy_model(), toy_data(), [Stage("main", 1, loss)], TrainConfig(batch_size=6), torch.device("cpu"))
    assert sorted(torch.cat([batch.image_ids for batch in loss.batches]).tolist()) == sorted(toy_data().image_of_caption.tolist())


def test_a_loss_reading_the_batch_gets_each_items_image_text_and_the_real_text_embeddings():
    loss = Recorder()
    model = toy_model()
    fit(model, toy_data(), [Stage("main", 1, loss)], CFG, torch.device("cpu"))
    for batch in loss.batches:
        rows = batch.image_texts("dense")["x"]
        assert torch.equal(rows[:, 0], 100 + batch.image_ids.float())
        assert batch.texts.shape == (len(batch.image_ids), 8) and batch.model is model


def test_epochs_in_the_batch_count_from_the_start_of_their_stage():
    loss = Recorder()
    stages = [Stage("warmup", 1, loss), Stage("main", 2, loss, restart=False)]
    fit(toy_model(), toy_data(), stages, CFG, torch.device("cpu"))
    assert sorted({(batch.stage, batch.epoch) for batch in loss.batches}) == [("main", 0), ("main", 1), ("warmup", 0)]


def test_begin_stage_sees_the_weights_the_previous_stage_left():
    first, second = Recorder(), Recorder()
    model = toy_model()
    initial = model.image_encoder.linear.weight.detach().clone()
    after_first = {}
    fit(model, toy_data(), [Stage("one", 2, first), Stage("two", 1, second)], CFG, torch.device("cpu"),
        on_epoch=lambda stage, epoch, record: after_first.setdefault(stage, model.image_encoder.linear.weight.detach().clone()) if epoch == 1 else None)
    assert torch.equal(first.begun[0], initial)
    assert torch.equal(second.begun[0], after_first["one"]) and not torch.equal(second.begun[0], initial)


def test_loss_terms_are_averaged_per_epoch_into_the_record():
    class WithTerms(Recorder):
        def forward(self, scores, image_ids, *, batch):
            self.terms = {"step": float(batch.step)}
            return super().forward(scores, image_ids, batch=batch)

    history = fit(toy_model(), toy_data(), [Stage("main", 1, WithTerms())], CFG, torch.device("cpu"))
    # 36 captions in batches of 5: steps 0..7 (the last batch has 1 caption and is dropped)
    assert history[0]["step"] == pytest.approx(sum(range(7)) / 7)


def test_a_stage_on_an_unknown_text_source_is_refused():
    with pytest.raises(UserError, match="text source 'long'.*it has: captions, dense"):
        fit(toy_model(), toy_data(), [Stage("main", 1, Recorder(), text="long")], CFG, torch.device("cpu"))


def test_a_loss_asking_for_an_unknown_text_source_is_told_which_exist():
    class Asks(Recorder):
        def forward(self, scores, image_ids, *, batch):
            batch.image_texts("long")

    with pytest.raises(UserError, match="reads text source 'long'.*it has: dense"):
        fit(toy_model(), toy_data(), [Stage("main", 1, Asks())], CFG, torch.device("cpu"))


def test_multistep_schedule_decays_at_each_milestone():
    cfg = TrainConfig(lr_schedule="multistep", lr_milestones=[9, 15, 20, 25], lr_decay=0.3)
    lrs = [stage_lr(2e-4, epoch, cfg) for epoch in (0, 8, 9, 15, 24, 25)]
    assert lrs == pytest.approx([2e-4, 2e-4, 6e-5, 1.8e-5, 5.4e-6, 1.62e-6])


def test_prepare_texts_tells_the_source_only_to_encoders_that_declare_it():
    class Plain:
        def prepare(self, texts):
            return {"n": torch.tensor([len(texts)])}

    class SourceAware:
        reads_text_source = True

        def prepare(self, texts, source="captions"):
            return {"source": source}

    assert prepare_texts(Plain(), ["a", "b"], "dense")["n"].item() == 2
    assert prepare_texts(SourceAware(), ["a"], "dense") == {"source": "dense"}

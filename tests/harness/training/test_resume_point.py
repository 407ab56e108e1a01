"""Resume points: a training resumed from any point it wrote ends exactly as the uninterrupted one."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from harness.config.job_config import TrainConfig
from harness.training.model import RetrievalModel
from harness.training.resume_point import ResumeFile, random_states, read_point, restore_random_states
from harness.training.samples import GeneratedSamples
from harness.training.trainer import Stage, fit
from tests.harness.training.test_trainer import Dot, InfoNCE, toy_data

OWNER = {"config_hash": "0123456789ab", "run_id": "r1"}


class NoisyProject(nn.Module):
    """A linear projection behind dropout: every step draws from torch's random stream."""

    def __init__(self, key: str, dim_in: int) -> None:
        super().__init__()
        self.key, self.dropout, self.linear = key, nn.Dropout(0.2), nn.Linear(dim_in, 8)

    def forward(self, inputs):
        return nn.functional.normalize(self.linear(self.dropout(inputs[self.key].float())), dim=-1)


def noisy_model() -> RetrievalModel:
    torch.manual_seed(0)
    return RetrievalModel(NoisyProject("pooled", 6), NoisyProject("x", 5), Dot())


def recipe() -> list[Stage]:
    """A warm-up, a stage continuing its optimiser and schedule, and a stage restarting both."""
    return [Stage("warmup", 2, InfoNCE()), Stage("main", 2, InfoNCE(), restart=False), Stage("finetune", 1, InfoNCE(), lr=5e-3)]


CONFIG = TrainConfig(batch_size=8, lr=1e-2, lr_decay_every=1, lr_decay=0.5, grad_clip=1.0)


class KeptPoints(ResumeFile):
    """The real resume file, keeping a copy of every point as read back from disk."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.points: list[dict] = []

    def write(self, state) -> None:
        super().write(state)
        owner, point = read_point(self.path)
        assert owner == OWNER
        self.points.append(point)


def shuffled(texts: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """A feature-level negative: the batch's caption embeddings in a random order."""
    return texts[torch.randperm(len(texts), generator=rng)]


def noised(texts: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    return nn.functional.normalize(texts + torch.randn(texts.shape, generator=rng), dim=-1)


def train(resume: ResumeFile | None, epochs: list | None = None, negatives: bool = False) -> tuple[RetrievalModel, list[dict]]:
    model = noisy_model()
    on_epoch = (lambda stage, epoch, record: epochs.append((stage, epoch, record))) if epochs is not None else None
    samples = GeneratedSamples([], [shuffled, noised], negative_mix="per-caption", seed=3) if negatives else None
    torch.manual_seed(1)  # the job's seed, as seed_everything sets it before training
    history = fit(model, toy_data(), recipe(), CONFIG, torch.device("cpu"), on_epoch=on_epoch, samples=samples, resume=resume)
    return model, history


@pytest.mark.parametrize(
    ("every", "negatives"), [(0, False), (3, False), (3, True)], ids=["every epoch", "every 3 steps", "generated negatives"]
)
def test_a_run_resumed_from_any_of_its_points_ends_as_the_uninterrupted_one(tmp_path, every, negatives):
    kept = KeptPoints(tmp_path / "point.pt", every, OWNER)
    model, history = train(kept, negatives=negatives)
    steps = len(toy_data().image_of_caption) // CONFIG.batch_size
    total_epochs = sum(stage.epochs for stage in recipe())
    assert len(kept.points) == (total_epochs if every == 0 else total_epochs * steps // every)
    if every:
        assert any(point["step"] for point in kept.points), "some points are halfway through an epoch"
    for point in kept.points:
        epochs: list = []
        resumed, resumed_history = train(ResumeFile(tmp_path / "again.pt", every, OWNER, point), epochs, negatives)
        for name, tensor in model.state_dict().items():
            assert torch.equal(resumed.state_dict()[name], tensor), f"{name} after resuming at step {point['steps']}"
        assert resumed_history == history
        assert [epoch for _, epoch, _ in epochs] == list(range(len(point["history"]), total_epochs)), "each epoch reported once"


def test_without_a_resume_file_training_is_unchanged(tmp_path):
    plain, plain_history = train(None)
    kept, kept_history = train(KeptPoints(tmp_path / "point.pt", 1, OWNER))
    assert kept_history == plain_history
    assert all(torch.equal(kept.state_dict()[name], tensor) for name, tensor in plain.state_dict().items())


def test_a_finished_point_restores_the_weights_and_trains_no_more(tmp_path):
    kept = KeptPoints(tmp_path / "point.pt", 0, OWNER)
    model, history = train(kept)
    epochs: list = []
    resumed, resumed_history = train(ResumeFile(tmp_path / "again.pt", 0, OWNER, kept.points[-1]), epochs)
    assert epochs == [] and resumed_history == history
    assert torch.equal(resumed.image_encoder.linear.weight, model.image_encoder.linear.weight)


def test_a_point_is_written_whole_and_read_without_pickled_code(tmp_path):
    points = ResumeFile(tmp_path / "job.pt", 0, OWNER)
    points.write({"weights": torch.arange(3.0), "note": "epoch 1"})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["job.pt"], "no staging file left"
    owner, state = read_point(tmp_path / "job.pt")
    assert owner == OWNER and state["note"] == "epoch 1" and torch.equal(state["weights"], torch.arange(3.0))
    torch.save({"format": 1, "owner": OWNER, "state": {"code": random.Random()}}, tmp_path / "pickled.pt")
    assert read_point(tmp_path / "pickled.pt") is None, "a point holding objects is refused, not unpickled"
    (tmp_path / "cut.pt").write_bytes((tmp_path / "job.pt").read_bytes()[:50])
    assert read_point(tmp_path / "cut.pt") is None and read_point(tmp_path / "none.pt") is None
    points.discard()
    assert not (tmp_path / "job.pt").exists()


def test_random_states_come_back_for_python_numpy_and_torch():
    states = random_states()
    drawn = (random.random(), np.random.rand(), torch.rand(1))
    restore_random_states(states)
    assert (random.random(), np.random.rand()) == drawn[:2] and torch.equal(torch.rand(1), drawn[2])


def test_resume_every_leaves_the_config_hash_alone():
    from harness.config.experiment_file import DatasetEntry
    from harness.config.job_config import ComponentRef, JobConfig
    from harness.job.job import Job

    def job(every: int) -> Job:
        config = JobConfig(image_encoder=ComponentRef(name="a"), text_encoder=ComponentRef(name="b"), train=TrainConfig(resume_every=every))
        return Job.create("m", "m", DatasetEntry(name="coco-demo"), 0, config)

    assert job(0).config_hash == job(50).config_hash
    assert job(0).params()["train.resume_every"] == "0"

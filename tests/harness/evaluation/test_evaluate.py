"""Evaluation: chunked score matrices and the metrics logged per protocol."""

from __future__ import annotations

import torch
from torch import nn

from harness.config.job_config import EvalConfig
from harness.evaluation.evaluate import evaluate_split
from harness.evaluation.protocols import full
from harness.evaluation.scoring import score_matrix
from harness.training.model import RetrievalModel, SplitInputs


class Take(nn.Module):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def forward(self, inputs):
        return inputs[self.key].float()


class Dot(nn.Module):
    def forward(self, images, texts):
        return images @ texts.T


def model() -> RetrievalModel:
    return RetrievalModel(Take("pooled"), Take("x"), Dot())


def test_chunked_scores_equal_one_matrix_product():
    images, texts = torch.randn(11, 4), torch.randn(23, 4)
    for chunk in (1, 5, 11, 64):
        torch.testing.assert_close(score_matrix(model(), images, texts, chunk), images @ texts.T)


def test_metrics_are_keyed_by_protocol_and_perfect_for_identity_embeddings():
    images = torch.eye(4)
    data = SplitInputs({"pooled": images.numpy()}, {"x": images.repeat_interleave(2, dim=0)}, torch.arange(4).repeat_interleave(2))
    metrics = evaluate_split(model(), data, {"full": full()}, EvalConfig(device="cpu", batch_size=3, score_chunk=2)).metrics
    assert metrics["full/rsum"] == 600.0
    assert metrics["full/rsum_tie_gap"] == 0.0


def test_collapsed_embeddings_show_a_tie_gap(capsys):
    data = SplitInputs({"pooled": torch.ones(4, 3).numpy()}, {"x": torch.ones(8, 3)}, torch.arange(4).repeat_interleave(2))
    metrics = evaluate_split(model(), data, {"full": full()}, EvalConfig(device="cpu", batch_size=3, score_chunk=2)).metrics
    assert metrics["full/rsum"] == 600.0
    assert metrics["full/rsum_tie_gap"] == 300.0  # pessimistic: t2i R@5, R@10 and i2t R@10 only
    assert "tied scores lift rSum" in capsys.readouterr().err

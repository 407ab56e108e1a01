"""Evaluation strategies: how a test split's score matrix is obtained, chosen by ``eval.mode``.

A strategy turns a model and a split's inputs into scores [n_images, n_captions]; protocols rank
them. A new mode (re-ranking the top k of a cheap prefilter, say) is one new strategy here, not
a branch inside the scoring code.
"""

from __future__ import annotations

import sys
from typing import Protocol

import torch

from harness.capabilities import READS_PAIRING_LABELS, claims
from harness.config.job_config import EvalConfig
from harness.evaluation.scoring import embed_split, score_matrix
from harness.training.model import RetrievalModel, SplitInputs


class EvaluationStrategy(Protocol):
    """Scores a split: float32 [n_images, n_captions] on the CPU."""

    def scores(self, model: RetrievalModel, data: SplitInputs, cfg: EvalConfig, device: torch.device) -> torch.Tensor: ...


class FullScores:
    """``eval.mode = "full"``: every (image, caption) pair through the head, block by block.

    A head that reads the pairing labels (`harness.capabilities.ReadsPairingLabels`, reproducing
    public code that leaks) scores the whole split at once instead, with a warning.
    """

    def scores(self, model: RetrievalModel, data: SplitInputs, cfg: EvalConfig, device: torch.device) -> torch.Tensor:
        images, texts = embed_split(model, data, cfg.batch_size, device, cfg.amp)
        if claims(model.head, READS_PAIRING_LABELS):
            print("warning: the similarity head reads the ground-truth pairing: these scores leak", file=sys.stderr)
            with torch.inference_mode():
                return model.head.score_with_pairing(images, texts, data.image_of_caption.to(device)).float().cpu()
        return score_matrix(model, images, texts, cfg.score_chunk, cfg.amp)


STRATEGIES: dict[str, type[EvaluationStrategy]] = {"full": FullScores}
"""``eval.mode`` -> strategy; the modes `EvalConfig.mode` admits."""


def strategy_for(cfg: EvalConfig) -> EvaluationStrategy:
    return STRATEGIES[cfg.mode]()

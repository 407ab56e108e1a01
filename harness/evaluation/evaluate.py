"""Evaluating a model on a test split: score it by the job's strategy, rank it by each protocol.

The strategy (``eval.mode``) produces the score matrix [n_images, n_captions]; each protocol
decides which slices of it are ranked and how they average. Besides the metrics, every query's
rank is kept, for confidence intervals, paired comparisons and slices (`harness.statistics`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from harness.config.job_config import EvalConfig
from harness.evaluation.strategies import strategy_for
from harness.interfaces import EvaluationProtocol
from harness.metrics import RSUM
from harness.statistics.ranks import QueryRanks, caption_word_counts
from harness.training.device import resolve_device
from harness.training.model import RetrievalModel, SplitInputs


@dataclass
class Evaluation:
    """Metrics keyed ``"{protocol}/{metric}"``, per protocol the rank of every query, and the
    score matrix they came from (float32 [n_images, n_captions], CPU)."""

    metrics: dict[str, float]
    ranks: dict[str, QueryRanks]
    scores: torch.Tensor


def evaluate_split(
    model: RetrievalModel,
    data: SplitInputs,
    protocols: Mapping[str, EvaluationProtocol],
    cfg: EvalConfig,
    caption_tags: Mapping[str, Sequence[str]] | None = None,
) -> Evaluation:
    """Score `data` as `cfg` says and rank it by every protocol (by registered name);
    `caption_tags` label each caption for slices."""
    device = resolve_device(cfg.device, "eval.device")
    scores = strategy_for(cfg).scores(model.to(device), data, cfg, device)
    image_of_caption = data.image_of_caption.numpy()
    words = caption_word_counts(data.captions)
    tags = {name: np.asarray(values, dtype=str) for name, values in (caption_tags or {}).items()}
    ranks = {}
    for name, protocol in protocols.items():
        i2t_rank, i2t_image, t2i_rank = protocol.query_ranks(scores.numpy(), image_of_caption)
        ranks[name] = QueryRanks(scores.shape[0], i2t_rank, i2t_image, t2i_rank, image_of_caption, words, tags)
    return Evaluation(protocol_metrics(scores, image_of_caption, protocols), ranks, scores)


def protocol_metrics(
    scores: torch.Tensor, image_of_caption: np.ndarray, protocols: Mapping[str, EvaluationProtocol]
) -> dict[str, float]:
    """Metrics for every protocol, keyed ``"{protocol}/{metric}"`` (e.g. ``coco-1k/rsum``).

    Recalls count ties in the query's favour, as the papers do; ``{protocol}/rsum_tie_gap`` is
    how much rSum that rule gained over counting ties against the query. It is 0 for any model
    whose scores do not tie, and large for a collapsed one, which would otherwise look perfect.
    """
    metrics: dict[str, float] = {}
    for name, protocol in protocols.items():
        optimistic = protocol.metrics(scores, image_of_caption)
        pessimistic = protocol.metrics(scores, image_of_caption, ties="pessimistic")
        metrics.update({f"{name}/{key}": value for key, value in optimistic.items()})
        gap = optimistic[RSUM] - pessimistic[RSUM]
        metrics[f"{name}/rsum_tie_gap"] = gap
        if gap > 0:
            print(f"warning: {name}: tied scores lift rSum by {gap:.1f} (pessimistic rSum {pessimistic[RSUM]:.1f})", file=sys.stderr)
    return metrics

"""Evaluating a model on a test split: embed it, score it by the job's strategy, rank it by each
protocol.

The strategy (``eval.mode``) produces, for each protocol's layout of image folds, the scores
image queries and caption queries rank; each protocol decides which slices are ranked and how
they average. Besides the metrics, every query's rank is kept, for confidence intervals, paired
comparisons and slices (`harness.statistics`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import torch

from harness.config.job_config import EvalConfig
from harness.evaluation.memory import SCORE_CHUNK_USED
from harness.evaluation.scoring import embed_split
from harness.evaluation.strategies import ScoredSplit, strategy_for
from harness.interfaces import EvaluationProtocol
from harness.metrics import RECALLS, RSUM
from harness.statistics.ranks import QueryRanks, caption_word_counts
from harness.training.device import resolve_device
from harness.training.model import RetrievalModel, SplitInputs

EVAL_SECONDS = "eval_seconds"
"""Wall time of a job's evaluation (embedding, scoring, ranking), logged beside the metrics."""


@dataclass
class Evaluation:
    """Metrics keyed ``"{protocol}/{metric}"`` (plus `EVAL_SECONDS` and the score chunk the
    evaluation ended with, `SCORE_CHUNK_USED`), per protocol the rank of
    every query, and the scores ranked (`ScoredSplit`) by fold count."""

    metrics: dict[str, float]
    ranks: dict[str, QueryRanks]
    scored: dict[int, ScoredSplit]

    @property
    def scores(self) -> torch.Tensor:
        """The one-fold score matrix image queries rank, float32 [n_images, n_captions] (CPU)."""
        return (self.scored.get(1) or next(iter(self.scored.values()))).i2t


def evaluate_split(
    model: RetrievalModel,
    data: SplitInputs,
    protocols: Mapping[str, EvaluationProtocol],
    cfg: EvalConfig,
    caption_tags: Mapping[str, Sequence[str]] | None = None,
    prefilter: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Evaluation:
    """Score `data` as `cfg` says and rank it by every protocol (by registered name);
    `caption_tags` label each caption for slices; `prefilter` global vectors (images, captions)
    pick a re-rank's candidates instead of the model's own."""
    started = time.perf_counter()
    device = resolve_device(cfg.device, "eval.device")
    model = model.to(device)
    images, texts = embed_split(model, data, cfg.batch_size, device, cfg.amp)
    strategy = strategy_for(cfg, prefilter)
    scored = {folds: strategy.score(model, images, texts, data.image_of_caption, cfg, folds) for folds in _fold_counts(protocols)}
    image_of_caption = data.image_of_caption.numpy()
    words = caption_word_counts(data.captions)
    tags = {name: np.asarray(values, dtype=str) for name, values in (caption_tags or {}).items()}
    ranks, metrics = {}, {}
    for name, protocol in protocols.items():
        split = scored[getattr(protocol, "folds", 1)]
        i2t_rank, i2t_image, t2i_rank = protocol.query_ranks(split.i2t.numpy(), image_of_caption)
        if split.t2i is not split.i2t:
            t2i_rank = protocol.query_ranks(split.t2i.numpy(), image_of_caption)[2]
        ranks[name] = _caption_queries(QueryRanks(split.i2t.shape[0], i2t_rank, i2t_image, t2i_rank, image_of_caption, words, tags))
        metrics.update(protocol_metrics(split, image_of_caption, name, protocol))
    metrics[EVAL_SECONDS] = time.perf_counter() - started
    metrics[SCORE_CHUNK_USED] = float(strategy.chunk.size)
    return Evaluation(metrics, ranks, scored)


def _caption_queries(ranks: QueryRanks) -> QueryRanks:
    """`ranks` without the captions the protocol does not query (rank -1: ECCV Caption queries
    1,332 of COCO's 25,000 captions)."""
    queries = ranks.t2i_rank >= 0
    if queries.all():
        return ranks
    return replace(
        ranks,
        t2i_rank=ranks.t2i_rank[queries],
        t2i_image=ranks.t2i_image[queries],
        caption_words=ranks.caption_words[queries] if len(ranks.caption_words) else ranks.caption_words,
        caption_tags={tag: values[queries] for tag, values in ranks.caption_tags.items()},
    )


def _fold_counts(protocols: Mapping[str, EvaluationProtocol]) -> list[int]:
    return sorted({getattr(protocol, "folds", 1) for protocol in protocols.values()})


def protocol_metrics(split: ScoredSplit, image_of_caption: np.ndarray, name: str, protocol: EvaluationProtocol) -> dict[str, float]:
    """One protocol's metrics, keyed ``"{name}/{metric}"`` (e.g. ``coco-1k/rsum``).

    Image-query metrics come from `split.i2t`, caption-query ones from `split.t2i`. Recalls count
    ties in the query's favour, as the papers do; ``{name}/rsum_tie_gap`` is how much rSum that
    rule gained over counting ties against the query. It is 0 for any model whose scores do not
    tie, and large for a collapsed one, which would otherwise look perfect.
    """
    optimistic = _both_directions(protocol, split, image_of_caption, "optimistic")
    pessimistic = _both_directions(protocol, split, image_of_caption, "pessimistic")
    metrics = {f"{name}/{key}": value for key, value in optimistic.items()}
    gap = optimistic[RSUM] - pessimistic[RSUM]
    metrics[f"{name}/rsum_tie_gap"] = gap
    metrics[f"{name}/pairs_scored"] = float(split.pairs_scored)
    metrics.update({f"{name}/{key}": value for key, value in split.extras.items()})
    if gap > 0:
        print(f"warning: {name}: tied scores lift rSum by {gap:.1f} (pessimistic rSum {pessimistic[RSUM]:.1f})", file=sys.stderr)
    return metrics


def _both_directions(protocol: EvaluationProtocol, split: ScoredSplit, image_of_caption: np.ndarray, ties: str) -> dict[str, float]:
    """The protocol's metrics with i2t read from `split.i2t` and t2i from `split.t2i`."""
    i2t = protocol.metrics(split.i2t, image_of_caption, ties=ties)
    if split.t2i is split.i2t:
        return i2t
    t2i = protocol.metrics(split.t2i, image_of_caption, ties=ties)
    merged = {key: (t2i if key.startswith("t2i_") else i2t)[key] for key in i2t}
    merged[RSUM] = sum(merged[key] for key in RECALLS)
    return merged

"""Evaluation strategies: how a test split's scores are obtained, chosen by ``eval.mode``.

A strategy turns the split's embeddings into what the protocols rank: for each layout of image
folds a protocol asks for, the scores image queries rank (``i2t``, row by row) and the scores
caption queries rank (``t2i``, column by column). A new mode is one new strategy here, not a
branch inside the scoring code.

- ``full`` scores every (image, caption) pair through the head, block by block; both directions
  rank the same matrix, whatever the folds.
- ``rerank`` takes each query's top k candidates by a cheap global prefilter, within the query's
  fold, and scores only those pairs through the head (the ALBEF / BLIP recipe for heads too
  costly to score densely). Every non-candidate ranks below every candidate, so R@K for K ≤ k is
  exact whenever the positive is a candidate; the prefilter's own recall at k, the ceiling
  re-ranking cannot exceed, is reported beside the metrics.

Both score in blocks of a strategy's `ScoreChunk`, which halves on out of memory
(`harness.evaluation.memory`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from harness.capabilities import READS_PAIRING_LABELS, SCORES_PAIRS, claims
from harness.config.job_config import EvalConfig
from harness.embeddings import Embeddings, VectorSets
from harness.evaluation.memory import ScoreChunk, naming
from harness.evaluation.protocols import image_folds
from harness.evaluation.scoring import precision, score_matrix
from harness.metrics import KS
from harness.training.model import RetrievalModel


@dataclass
class ScoredSplit:
    """What the protocols of one fold layout rank.

    Attributes:
        i2t: float32 [n_images, n_captions] (CPU): row i is what image query i ranks.
        t2i: float32 [n_images, n_captions] (CPU): column c is what caption query c ranks; the
            same tensor as `i2t` when every pair was scored.
        pairs_scored: (image, caption) pairs the head scored.
        extras: further per-protocol figures, e.g. the prefilter's recall at k (percent).
    """

    i2t: torch.Tensor
    t2i: torch.Tensor
    pairs_scored: int
    extras: dict[str, float] = field(default_factory=dict)


class EvaluationStrategy(Protocol):
    """Scores a split's embeddings for one layout of image folds."""

    chunk: ScoreChunk
    """The block size it scores with, as halved so far."""

    def score(
        self, model: RetrievalModel, images: Embeddings, texts: Embeddings, image_of_caption: torch.Tensor, cfg: EvalConfig, folds: int
    ) -> ScoredSplit: ...


class FullScores:
    """``eval.mode = "full"``: every (image, caption) pair through the head, block by block.

    A head that reads the pairing labels (`harness.capabilities.ReadsPairingLabels`, reproducing
    public code that leaks) scores the whole split at once instead, with a warning. The matrix
    serves every fold layout, so it is computed once.
    """

    def __init__(self, chunk: ScoreChunk) -> None:
        self.chunk = chunk
        self._scored: ScoredSplit | None = None

    def score(
        self, model: RetrievalModel, images: Embeddings, texts: Embeddings, image_of_caption: torch.Tensor, cfg: EvalConfig, folds: int
    ) -> ScoredSplit:
        if self._scored is None:
            if claims(model.head, READS_PAIRING_LABELS):
                print("warning: the similarity head reads the ground-truth pairing: these scores leak", file=sys.stderr)
                with torch.inference_mode():
                    device = _device_of(images)
                    scores = model.head.score_with_pairing(images, texts, image_of_caption.to(device)).float().cpu()
            else:
                scores = score_matrix(model, images, texts, self.chunk, cfg.amp)
            self._scored = ScoredSplit(scores, scores, scores.numel())
        return self._scored


class Rerank:
    """``eval.mode = "rerank"``: the head scores each query's top `rerank_k` candidates only.

    Args:
        chunk: the block size of the prefilter's search.
        prefilter: global vectors (images [n_images, D], captions [n_captions, D]) to pick the
            candidates with, e.g. another method's; None takes the model's own
            (`global_vectors` of its embeddings).
    """

    def __init__(self, chunk: ScoreChunk, prefilter: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self.chunk, self.prefilter = chunk, prefilter

    @torch.inference_mode()
    def score(
        self, model: RetrievalModel, images: Embeddings, texts: Embeddings, image_of_caption: torch.Tensor, cfg: EvalConfig, folds: int
    ) -> ScoredSplit:
        if claims(model.head, READS_PAIRING_LABELS):
            from harness.errors import UserError

            raise UserError("eval.mode 'rerank': the similarity head reads the ground-truth pairing, so its pairs cannot be scored apart")
        if cfg.rerank_k < max(KS):
            beyond = " and ".join(f"R@{k}" for k in KS if k > cfg.rerank_k)
            print(
                f"warning: eval.rerank_k = {cfg.rerank_k}: {beyond} count a positive outside the {cfg.rerank_k} candidates "
                f"as rank {cfg.rerank_k + 1} (an upper bound)",
                file=sys.stderr,
            )
        device = _device_of(images)
        image_vectors, text_vectors = self.prefilter or (global_vectors(images), global_vectors(texts))
        image_vectors, text_vectors = image_vectors.to(device).float(), text_vectors.to(device).float()
        labels = image_of_caption.cpu().numpy()
        n_images, n_captions = len(images), len(texts)
        pairs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"i2t": [], "t2i": []}  # (image, caption) indices
        hits = {"i2t": 0, "t2i": 0}
        for fold_images, fold_captions in image_folds(labels, n_images, folds):
            fold_images_t = torch.as_tensor(fold_images, device=device)
            fold_captions_t = torch.as_tensor(fold_captions, device=device)
            # i2t: each image query of the fold, its k best captions of the fold
            k = min(cfg.rerank_k, len(fold_captions))
            picked = fold_captions_t[top_candidates(image_vectors[fold_images_t], text_vectors[fold_captions_t], k, cfg, self.chunk)]
            query = fold_images_t[:, None].expand_as(picked)
            hits["i2t"] += int((torch.as_tensor(labels, device=device)[picked] == query).any(1).sum())
            pairs["i2t"].append((query.reshape(-1), picked.reshape(-1)))
            # t2i: each caption query of the fold, its k best images of the fold
            k = min(cfg.rerank_k, len(fold_images))
            picked = fold_images_t[top_candidates(text_vectors[fold_captions_t], image_vectors[fold_images_t], k, cfg, self.chunk)]
            query = fold_captions_t[:, None].expand_as(picked)
            hits["t2i"] += int((picked == torch.as_tensor(labels, device=device)[query]).any(1).sum())
            pairs["t2i"].append((picked.reshape(-1), query.reshape(-1)))
        with naming("eval.rerank_k", cfg.rerank_k, "scoring the re-rank candidates"):
            scored = {
                direction: [(rows, columns, pair_scores(model, images, texts, rows, columns, cfg, direction)) for rows, columns in entries]
                for direction, entries in pairs.items()
            }
        values = [s for entries in scored.values() for _, _, s in entries if len(s)]
        floor = float(torch.cat(values).min()) - 1.0 if values else 0.0
        matrices = {}
        for direction, entries in scored.items():
            matrix = torch.full((n_images, n_captions), floor, dtype=torch.float32)
            for rows, columns, head_scores in entries:
                matrix[rows.cpu(), columns.cpu()] = head_scores
            matrices[direction] = matrix
        n_queries = {"i2t": int(np.sum(np.bincount(labels, minlength=n_images) > 0)), "t2i": n_captions}
        extras = {f"prefilter_{direction}_recall": 100.0 * hits[direction] / max(n_queries[direction], 1) for direction in hits}
        extras["rerank_k"] = float(cfg.rerank_k)
        total = sum(len(rows) for entries in pairs.values() for rows, _ in entries)
        return ScoredSplit(matrices["i2t"], matrices["t2i"], total, extras)


STRATEGIES: dict[str, type] = {"full": FullScores, "rerank": Rerank}
"""``eval.mode`` -> strategy; the modes `EvalConfig.mode` admits."""


def strategy_for(cfg: EvalConfig, prefilter: tuple[torch.Tensor, torch.Tensor] | None = None) -> EvaluationStrategy:
    """The strategy of ``cfg.mode``, scoring in blocks of ``cfg.score_chunk`` within
    ``cfg.memory_budget_mb``; `prefilter` vectors only matter to a re-rank."""
    chunk = ScoreChunk(cfg.score_chunk, cfg.memory_budget_mb)
    return Rerank(chunk, prefilter) if cfg.mode == "rerank" else FullScores(chunk)


def global_vectors(embeddings: Embeddings) -> torch.Tensor:
    """One unit vector per item, for a prefilter: global embeddings as they are; a vector set's
    `summary` (e.g. AsCL's global image vector) or else the mean of its vectors (SCAN)."""
    if isinstance(embeddings, VectorSets):
        vectors = embeddings.summary if embeddings.summary is not None else embeddings.mean()
    else:
        vectors = embeddings
    return torch.nn.functional.normalize(vectors.float(), dim=-1)


def top_candidates(queries: torch.Tensor, gallery: torch.Tensor, k: int, cfg: EvalConfig, chunk: ScoreChunk | None = None) -> torch.Tensor:
    """int64 [n_queries, k] on the queries' device: each query's k highest-scoring gallery items
    by dot product, exact, `chunk` queries at a time (default: ``cfg.score_chunk``, halved on out
    of memory) so memory stays at chunk × n_gallery scores; through faiss on the host when
    ``cfg.prefilter_search = "faiss"``."""
    chunk = chunk or ScoreChunk(cfg.score_chunk, cfg.memory_budget_mb)
    if cfg.prefilter_search == "faiss":
        return _faiss_top_candidates(queries, gallery, k, chunk.size)
    if not len(queries):
        return torch.empty(0, k, dtype=torch.long, device=queries.device)

    def best(start: int, size: int) -> torch.Tensor:
        return (queries[start : start + size] @ gallery.T).topk(k, dim=1).indices

    chunk.fit_budget(lambda size: best(0, size), len(queries))
    found: list[torch.Tensor] = []
    start = 0
    while start < len(queries):
        found.append(chunk.attempt(lambda size: best(start, size)))
        start += len(found[-1])
    return torch.cat(found)


def _faiss_top_candidates(queries: torch.Tensor, gallery: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """`top_candidates` through a flat (exact) faiss inner-product index on the host: the
    gallery lives in host memory, not the device's."""
    import faiss

    index = faiss.IndexFlatIP(gallery.shape[1])
    for start in range(0, len(gallery), chunk):
        index.add(np.ascontiguousarray(gallery[start : start + chunk].float().cpu().numpy()))
    found = [index.search(np.ascontiguousarray(queries[start : start + chunk].float().cpu().numpy()), k)[1] for start in range(0, len(queries), chunk)]
    indices = np.concatenate(found) if found else np.empty((0, k), dtype=np.int64)
    return torch.from_numpy(indices.astype(np.int64)).to(queries.device)


def pair_scores(
    model: RetrievalModel,
    images: Embeddings,
    texts: Embeddings,
    image_index: torch.Tensor,
    caption_index: torch.Tensor,
    cfg: EvalConfig,
    direction: str = "i2t",
) -> torch.Tensor:
    """float32 [P] (CPU): the head's score of each pair (images[image_index[p]], texts[caption_index[p]]).

    A head that scores pairs (`harness.capabilities.ScoresPairs`) does it batched. Any other head
    scores each query's candidates through `forward`, one query at a time: the pairs come grouped
    by query, the image of an ``i2t`` pair or the caption of a ``t2i`` pair.
    """
    device = _device_of(images)
    with precision(device, cfg.amp):
        if claims(model.head, SCORES_PAIRS):
            return model.head.score_pairs(images, texts, image_index, caption_index).float().cpu()
        queries = image_index if direction == "i2t" else caption_index
        out = torch.empty(len(queries), dtype=torch.float32)
        starts = [0, *(torch.nonzero(queries[1:] != queries[:-1]).flatten() + 1).tolist()] if len(queries) else []
        for start, end in zip(starts, [*starts[1:], len(queries)]):
            rows, columns = image_index[start:end], caption_index[start:end]
            if direction == "i2t":
                out[start:end] = model.score(images[rows[:1]], texts[columns]).float().cpu()[0]
            else:
                out[start:end] = model.score(images[rows], texts[columns[:1]]).float().cpu()[:, 0]
        return out


def _device_of(embeddings: Embeddings) -> torch.device:
    return embeddings.vectors.device if isinstance(embeddings, VectorSets) else embeddings.device

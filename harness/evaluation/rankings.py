"""Per-query rankings keyed by dataset ids: what outside evaluation tools read.

Every job run stores, per protocol, each query's top k candidates and their scores in both
directions (``rankings/<protocol>.npz``, k = ``eval.rankings_top_k``), keyed by the split's ids:
image ids (COCO's cocoid where the dataset gives one) and caption ids (COCO caption annotation
ids where the dataset matched them, else ``<image id>#<n>``, the image's n-th caption). A fold
protocol (coco-1k) ranks each query within its fold, as its metrics do. Tied scores keep an
arbitrary order.

`itr export-rankings RUN` writes them for other tools (`export_rankings`):

- ``json``: ``{"protocol": P, "i2t": {image id: {caption id: score}}, "t2i": {caption id:
  {image id: score}}}``, candidates best first: each direction is a run dict as ranx
  (``Run(data["i2t"])``) and pytrec_eval read, and its keys in order are the ranked id list
  the eccv-caption package reads (``{int(q): [int(d) for d in c] for q, c in data["i2t"].items()}``).
- ``parquet``: one row per (query, candidate): ``direction, query_id, rank`` (1-based)
  ``, candidate_id, score``; ranx's ``Run.from_df(frame[frame.direction == "i2t"], "query_id",
  "candidate_id", "score")`` reads a direction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from harness.atomic import write_atomically, write_text_atomically
from harness.errors import UserError
from harness.evaluation.protocols import image_folds
from harness.interfaces import EvaluationProtocol, RetrievalSplit

if TYPE_CHECKING:
    import pandas as pd

    from harness.evaluation.strategies import ScoredSplit

FORMATS = ("json", "parquet")
DIRECTIONS = ("i2t", "t2i")


@dataclass(frozen=True)
class Rankings:
    """Each query's top k candidates, best first, in both directions.

    Attributes:
        image_ids: str [n_images]; caption_ids: str [n_captions]: the split's ids.
        i2t_top: int32 [n_images, k], the caption indices each image query ranks first;
            i2t_score: float32 [n_images, k], their scores.
        t2i_top: int32 [n_captions, k], the image indices each caption query ranks first;
            t2i_score: float32 [n_captions, k].
    """

    image_ids: np.ndarray
    caption_ids: np.ndarray
    i2t_top: np.ndarray
    i2t_score: np.ndarray
    t2i_top: np.ndarray
    t2i_score: np.ndarray

    @property
    def top_k(self) -> int:
        return int(self.i2t_top.shape[1])

    def save(self, path: Path) -> Path:
        """Write a compressed ``.npz``, atomically."""
        arrays = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return write_atomically(path, lambda staging: np.savez_compressed(staging, **arrays))

    @classmethod
    def load(cls, path: Path) -> "Rankings":
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(f"{path}: not a rankings file ({exc})") from None

    def run(self, direction: str, top: int | None = None) -> dict[str, dict[str, float]]:
        """``{query id: {candidate id: score}}``, candidates best first (the top `top` only)."""
        queries, candidates = (self.image_ids, self.caption_ids) if direction == "i2t" else (self.caption_ids, self.image_ids)
        ranked, scores = getattr(self, f"{direction}_top")[:, :top], getattr(self, f"{direction}_score")[:, :top]
        return {
            str(query): {str(candidates[index]): float(score) for index, score in zip(row, row_scores)}
            for query, row, row_scores in zip(queries, ranked, scores)
        }

    def frame(self, top: int | None = None) -> "pd.DataFrame":
        """One row per (query, candidate): direction, query_id, rank (1-based), candidate_id, score."""
        import pandas as pd

        parts = []
        for direction in DIRECTIONS:
            queries, candidates = (self.image_ids, self.caption_ids) if direction == "i2t" else (self.caption_ids, self.image_ids)
            ranked, scores = getattr(self, f"{direction}_top")[:, :top], getattr(self, f"{direction}_score")[:, :top]
            n_queries, width = ranked.shape
            parts.append(
                pd.DataFrame(
                    {
                        "direction": direction,
                        "query_id": np.repeat(queries.astype(str), width),
                        "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), n_queries),
                        "candidate_id": candidates.astype(str)[ranked.ravel()],
                        "score": scores.ravel(),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)


def caption_keys(split: RetrievalSplit) -> np.ndarray:
    """The split's caption ids, or ``<image id>#<n>`` (the n-th caption of its image) without them."""
    if split.caption_ids is not None:
        return np.asarray(split.caption_ids, dtype=str)
    seen: dict[int, int] = {}
    keys = []
    for image in split.image_of_caption.tolist():
        keys.append(f"{split.image_ids[image]}#{seen.get(image, 0)}")
        seen[image] = seen.get(image, 0) + 1
    return np.asarray(keys, dtype=str)


def top_k_rankings(scored: "ScoredSplit", split: RetrievalSplit, folds: int, k: int) -> Rankings:
    """The top `k` of every query within its fold: image queries rank `scored.i2t`'s rows,
    caption queries `scored.t2i`'s columns (k is capped at the smallest fold's candidates)."""
    image_of_caption = np.asarray(split.image_of_caption)
    layout = image_folds(image_of_caption, split.n_images, folds)
    width = min(k, *(min(len(images), len(captions)) for images, captions in layout))
    i2t_top = np.empty((split.n_images, width), dtype=np.int32)
    i2t_score = np.empty((split.n_images, width), dtype=np.float32)
    t2i_top = np.empty((split.n_captions, width), dtype=np.int32)
    t2i_score = np.empty((split.n_captions, width), dtype=np.float32)
    for images, captions in layout:
        best = _fold_block(scored.i2t, images, captions).topk(width, dim=1)
        i2t_top[images], i2t_score[images] = captions[best.indices.numpy()], best.values.numpy()
        best = _fold_block(scored.t2i, images, captions).topk(width, dim=0)
        t2i_top[captions], t2i_score[captions] = images[best.indices.numpy().T], best.values.numpy().T
    return Rankings(np.asarray(split.image_ids, dtype=str), caption_keys(split), i2t_top, i2t_score, t2i_top, t2i_score)


def _fold_block(matrix, images: np.ndarray, captions: np.ndarray):
    """The fold's scores [fold images, fold captions]: a view of its (consecutive) image rows,
    its captions gathered only when they are not all of them."""
    import torch

    block = matrix[images[0] : images[-1] + 1]
    return block if len(captions) == matrix.shape[1] else block[:, torch.from_numpy(captions)]


def rankings_of(
    scored: Mapping[int, "ScoredSplit"], protocols: Mapping[str, EvaluationProtocol], split: RetrievalSplit, k: int
) -> dict[str, Rankings]:
    """Every protocol's rankings (`top_k_rankings`), computed once per fold layout."""
    by_folds: dict[int, Rankings] = {}
    for protocol in protocols.values():
        folds = getattr(protocol, "folds", 1)
        if folds not in by_folds:
            by_folds[folds] = top_k_rankings(scored[folds], split, folds, k)
    return {name: by_folds[getattr(protocol, "folds", 1)] for name, protocol in protocols.items()}


def export_rankings(rankings: Rankings, protocol: str, fmt: str, output: Path, top: int | None = None) -> Path:
    """Write `rankings` to `output` as ``json`` or ``parquet`` (module docstring), atomically."""
    if fmt not in FORMATS:
        raise UserError(f"unknown rankings format '{fmt}'; expected one of {', '.join(FORMATS)}")
    if top is not None and not 1 <= top <= rankings.top_k:
        raise UserError(f"--top {top}: the run stored the top {rankings.top_k} of each query; choose 1 to {rankings.top_k}")
    if fmt == "parquet":
        frame = rankings.frame(top)
        return write_atomically(output, lambda staging: frame.to_parquet(staging, index=False))
    document: dict[str, Any] = {"protocol": protocol, **{direction: rankings.run(direction, top) for direction in DIRECTIONS}}
    return write_text_atomically(output, json.dumps(document))

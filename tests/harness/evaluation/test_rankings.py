"""Per-query top-k rankings by dataset ids (`harness.evaluation.rankings`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from harness.errors import UserError
from harness.evaluation.rankings import Rankings, export_rankings, top_k_rankings
from harness.evaluation.strategies import ScoredSplit
from harness.interfaces import RetrievalSplit


def tiny_split(caption_ids=None) -> RetrievalSplit:
    """4 images (ids 10..13), 2 captions each."""
    return RetrievalSplit(
        dataset="tiny", split="test", image_ids=("10", "11", "12", "13"), captions=tuple(f"c{n}" for n in range(8)),
        image_of_caption=np.repeat(np.arange(4), 2), caption_ids=caption_ids,
    )


def scored(scores: torch.Tensor) -> ScoredSplit:
    return ScoredSplit(scores, scores, pairs_scored=scores.numel())


def test_each_query_keeps_its_best_candidates_by_id_best_first():
    scores = torch.rand(4, 8, generator=torch.Generator().manual_seed(2))  # no ties
    rankings = top_k_rankings(scored(scores), tiny_split(), folds=1, k=3)
    np.testing.assert_array_equal(rankings.i2t_top, torch.argsort(scores, dim=1, descending=True)[:, :3].numpy())
    np.testing.assert_array_equal(rankings.t2i_top, torch.argsort(scores.T, dim=1, descending=True)[:, :3].numpy())
    np.testing.assert_array_equal(rankings.t2i_score, scores.T.sort(dim=1, descending=True).values[:, :3].numpy())
    assert list(rankings.caption_ids) == ["10#0", "10#1", "11#0", "11#1", "12#0", "12#1", "13#0", "13#1"]  # no dataset ids


def test_a_fold_protocol_ranks_within_the_query_fold():
    scores = torch.rand(4, 8, generator=torch.Generator().manual_seed(0))
    rankings = top_k_rankings(scored(scores), tiny_split(), folds=2, k=10)
    assert rankings.top_k == 2  # capped at a fold's 2 images
    assert set(rankings.i2t_top[:2].ravel()) <= {0, 1, 2, 3} and set(rankings.i2t_top[2:].ravel()) <= {4, 5, 6, 7}
    assert set(rankings.t2i_top[4:].ravel()) == {2, 3}


def test_rankings_survive_a_round_trip_and_export_by_dataset_ids(tmp_path):
    split = tiny_split(caption_ids=tuple(str(900 + n) for n in range(8)))
    rankings = top_k_rankings(scored(torch.rand(4, 8, generator=torch.Generator().manual_seed(1))), split, folds=1, k=4)
    loaded = Rankings.load(rankings.save(tmp_path / "full.npz"))
    assert all(np.array_equal(getattr(loaded, name), getattr(rankings, name)) for name in Rankings.__dataclass_fields__)
    document = json.loads(export_rankings(loaded, "full", "json", tmp_path / "r.json", top=2).read_text())
    frame = pd.read_parquet(export_rankings(loaded, "full", "parquet", tmp_path / "r.parquet"))
    assert set(document["i2t"]) == {"10", "11", "12", "13"} and all(len(ranked) == 2 for ranked in document["t2i"].values())
    best = frame[(frame.direction == "i2t") & (frame["rank"] == 1)].set_index("query_id").candidate_id.to_dict()
    assert best == {image: next(iter(ranked)) for image, ranked in document["i2t"].items()}
    assert len(frame) == (4 + 8) * 4


def test_a_file_that_is_not_rankings_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(UserError, match="other.npz: not a rankings file"):
        Rankings.load(tmp_path / "other.npz")

"""Per-query ranks, the vectorised bootstrap, paired comparisons, slices and leaderboard marks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.errors import UserError
from harness.metrics import metrics_from_ranks
from harness.evaluation.protocols import RecallAtK
from harness.statistics.board import BEST, TIED, add_statistics
from harness.statistics.bootstrap import image_weights, intervals, point_metrics, recall_samples
from harness.statistics.paired import paired_differences
from harness.statistics.ranks import QueryRanks
from harness.statistics.slices import length_buckets, slice_metrics, slices_of

CAPTIONS_PER_IMAGE = 5


def synthetic_ranks(rng, n_images, p_hit_image, p_hit_caption, words=None, tags=None) -> QueryRanks:
    """Ranks where each image query hits at rank 0 with p_hit_image (else a rank in 1..30), and
    each caption query likewise with p_hit_caption."""
    def draw(n, p):
        return np.where(rng.random(n) < p, 0, rng.integers(1, 30, n))

    n_captions = n_images * CAPTIONS_PER_IMAGE
    words = words if words is not None else rng.integers(5, 20, n_captions)
    return QueryRanks(
        n_images, draw(n_images, p_hit_image), np.arange(n_images), draw(n_captions, p_hit_caption),
        np.repeat(np.arange(n_images), CAPTIONS_PER_IMAGE), words, tags or {},
    )


def test_point_metrics_equal_the_metrics_of_the_ranks():
    ranks = synthetic_ranks(np.random.default_rng(0), 50, 0.4, 0.3)
    expected = metrics_from_ranks(ranks.i2t_rank, ranks.t2i_rank)
    points = point_metrics(ranks)
    assert points == pytest.approx({key: expected[key] for key in points}, abs=1e-4)


@pytest.mark.parametrize("folds", [1, 2])
def test_protocol_query_ranks_reproduce_the_protocol_metrics(folds):
    rng = np.random.default_rng(folds)
    n_images = 8
    image_of_caption = rng.permutation(np.repeat(np.arange(n_images), CAPTIONS_PER_IMAGE))
    scores = rng.standard_normal((n_images, len(image_of_caption))).astype(np.float32)
    protocol = RecallAtK("test", folds=folds)
    i2t_rank, i2t_image, t2i_rank = protocol.query_ranks(scores, image_of_caption)
    ranks = QueryRanks(n_images, i2t_rank, i2t_image, t2i_rank, image_of_caption, np.ones(len(t2i_rank), np.int32))
    metrics = protocol.metrics(scores, image_of_caption)
    assert point_metrics(ranks) == pytest.approx({key: metrics[key] for key in point_metrics(ranks)}, abs=1e-4)
    assert sorted(i2t_image) == list(range(n_images))


def test_the_vectorised_bootstrap_equals_resampling_the_queries_one_by_one():
    rng = np.random.default_rng(1)
    ranks = synthetic_ranks(rng, 30, 0.5, 0.3)
    weights = image_weights(ranks.n_images, 5, np.random.default_rng(7))
    assert (weights.sum(axis=1) == ranks.n_images).all()
    samples = recall_samples(ranks, weights)
    for row, counts in enumerate(weights.astype(int)):
        images = np.repeat(np.arange(ranks.n_images), counts)  # the drawn images, with repeats
        i2t = np.concatenate([ranks.i2t_rank[ranks.i2t_image == image] for image in images])
        t2i = np.concatenate([ranks.t2i_rank[ranks.t2i_image == image] for image in images])
        expected = metrics_from_ranks(i2t, t2i)
        for metric in ("i2t_r1", "i2t_r10", "t2i_r5", "rsum"):
            assert samples[metric][row] == pytest.approx(expected[metric], abs=1e-3)


def test_paired_intervals_cover_a_known_difference_at_the_stated_rate():
    """Test sets drawn again and again from one population with a true i2t R@1 gap of 10 points:
    the 90 % paired interval must contain 10 about 90 % of the time."""
    rng = np.random.default_rng(2026)
    repetitions, covered = 200, 0
    for repetition in range(repetitions):
        a = synthetic_ranks(rng, 300, 0.5, 0.3)
        b = synthetic_ranks(rng, 300, 0.4, 0.3)
        [i2t_r1] = [d for d in paired_differences([a], [b], resamples=400, confidence=0.9, seed=repetition) if d.metric == "i2t_r1"]
        covered += i2t_r1.low <= 10.0 <= i2t_r1.high
    assert 0.84 <= covered / repetitions <= 0.96  # binomial sd at 0.9 over 200 draws: 2.1 points


def test_identical_runs_differ_by_zero_with_p_one():
    ranks = synthetic_ranks(np.random.default_rng(3), 40, 0.5, 0.4)
    for difference in paired_differences([ranks], [ranks], resamples=200):
        assert (difference.difference, difference.low, difference.high, difference.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_a_large_difference_is_significant():
    rng = np.random.default_rng(4)
    strong, weak = synthetic_ranks(rng, 500, 0.8, 0.8), synthetic_ranks(rng, 500, 0.2, 0.2)
    rsum = next(d for d in paired_differences([strong], [weak], resamples=500) if d.metric == "rsum")
    assert rsum.difference > 0 and rsum.low > 0 and rsum.p_value < 0.01


def test_different_query_sets_cannot_be_paired():
    rng = np.random.default_rng(5)
    with pytest.raises(UserError, match="different queries"):
        paired_differences([synthetic_ranks(rng, 10, 0.5, 0.5)], [synthetic_ranks(rng, 11, 0.5, 0.5)])


def test_intervals_contain_the_point_value():
    ranks = synthetic_ranks(np.random.default_rng(6), 100, 0.5, 0.4)
    for interval in intervals(ranks, resamples=300).values():
        assert interval.low <= interval.value <= interval.high and interval.half_width > 0


def test_slices_partition_the_caption_queries_exactly():
    rng = np.random.default_rng(8)
    words = rng.integers(3, 25, 60 * CAPTIONS_PER_IMAGE)
    ranks = synthetic_ranks(rng, 60, 0.5, 0.4, words=words)
    table = slice_metrics(ranks, slices_of(ranks, "length", (9, 12)))
    assert list(table["slice"]) == ["short (≤9)", "medium (10–12)", "long (≥13)"]
    assert table["queries"].sum() == len(words)
    assert table["queries"].tolist() == [(words <= 9).sum(), ((words >= 10) & (words <= 12)).sum(), (words >= 13).sum()]
    overall = point_metrics(ranks)["t2i_r1"]
    assert (table["t2i_r1"] * table["queries"]).sum() / len(words) == pytest.approx(overall, abs=1e-4)


def test_slices_by_a_dataset_tag_and_unknown_tags():
    rng = np.random.default_rng(9)
    tags = {"source": np.array(["web", "manual"] * (10 * CAPTIONS_PER_IMAGE // 2))}
    ranks = synthetic_ranks(rng, 10, 0.5, 0.5, tags=tags)
    assert slice_metrics(ranks, slices_of(ranks, "source"))["queries"].tolist() == [25, 25]
    with pytest.raises(UserError, match="no per-caption tag 'colour'"):
        slices_of(ranks, "colour")
    with pytest.raises(UserError, match="0 < short < long"):
        length_buckets(np.array([3]), (12, 9))


def test_ranks_files_round_trip_and_a_corrupt_one_is_a_user_error(tmp_path):
    ranks = synthetic_ranks(np.random.default_rng(10), 6, 0.5, 0.5, tags={"source": np.array(["a"] * 30)})
    again = QueryRanks.load(ranks.save(tmp_path / "full.npz"))
    assert again.same_queries(ranks) and np.array_equal(again.t2i_rank, ranks.t2i_rank)
    assert list(again.caption_tags["source"]) == ["a"] * 30
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="bad.npz: not a per-query ranks file"):
        QueryRanks.load(tmp_path / "bad.npz")


def test_the_board_marks_the_best_row_and_rows_not_significantly_different():
    rng = np.random.default_rng(11)
    runs = {"strong": synthetic_ranks(rng, 400, 0.8, 0.8), "close": None, "weak": synthetic_ranks(rng, 400, 0.2, 0.2)}
    runs["close"] = QueryRanks(400, runs["strong"].i2t_rank.copy(), runs["strong"].i2t_image, runs["strong"].t2i_rank.copy(),
                               runs["strong"].t2i_image, runs["strong"].caption_words)
    runs["close"].i2t_rank[:2] = 5  # two image queries worse than the strong run
    board = pd.DataFrame([{"dataset": "d", "protocol": "full", "method": name, **point_metrics(r)} for name, r in runs.items()])
    marked = add_statistics(board, {("d", "full", name): [name] for name in runs}, lambda run_id, protocol: runs[run_id], resamples=300)
    marks = dict(zip(marked["method"], marked["rsum_mark"]))
    assert marks == {"strong": BEST, "close": TIED, "weak": ""}
    assert (marked["rsum_ci"] > 0).all()

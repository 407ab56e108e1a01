"""ECCV Caption and CxC against the eccv-caption package's own computation, on its real ids.

The split is the package's COCO 5K test set in a shuffled order; the scores are synthetic: a
perfect ranking built from the package's positives, and random (shuffled) scores. Ranked id
lists made from the same scores go through `eccv_caption.Metrics`, and both must agree.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from harness.evaluation.extended import Direction, cxc, eccv_caption, package_ground_truth, positive_positions, precision_metrics
from harness.interfaces import RetrievalSplit

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from eccv_caption import Metrics


@pytest.fixture(scope="module")
def coco_5k_split() -> RetrievalSplit:
    """The package's 5,000 test images and 25,000 caption ids, images and captions shuffled."""
    rng = np.random.default_rng(0)
    original = Metrics().coco_gts["i2t"]
    images = rng.permutation(sorted(original))
    captions = [(int(caption), row) for row, image in enumerate(images) for caption in original[int(image)]]
    order = rng.permutation(len(captions))
    return RetrievalSplit(
        dataset="coco",
        split="test",
        image_ids=tuple(str(image) for image in images),
        captions=tuple(f"caption {caption}" for caption, _ in captions),
        image_of_caption=np.array([captions[index][1] for index in order], dtype=np.int64),
        caption_ids=tuple(str(captions[index][0]) for index in order),
    )


def ranked_ids(scores: np.ndarray, split: RetrievalSplit, top: int = 50) -> tuple[dict, dict]:
    """The package's input: i2t {image id: caption ids best first}, t2i {caption id: image ids};
    `top` covers the most positives a query has (48)."""
    matrix = torch.from_numpy(scores)
    images = np.array([int(image) for image in split.image_ids])
    captions = np.array([int(caption) for caption in split.caption_ids])
    i2t = matrix.topk(top, dim=1).indices.numpy()
    t2i = matrix.topk(top, dim=0).indices.numpy().T
    return (
        {int(image): captions[row].tolist() for image, row in zip(images, i2t)},
        {int(caption): images[row].tolist() for caption, row in zip(captions, t2i)},
    )


def package_metrics(i2t: dict, t2i: dict) -> dict[str, float]:
    """The package's numbers, in our names and in percent."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        package = Metrics()
        eccv = package.compute_all_metrics(i2t, t2i, target_metrics=("eccv_map_at_r", "eccv_rprecision", "eccv_r1"), verbose=False)
        recalls = {ground: {k: package_recalls(package, ground, i2t, t2i, k) for k in (1, 5, 10)} for ground in ("eccv", "cxc")}
    figures = {}
    for direction in ("i2t", "t2i"):
        figures[f"eccv-caption/{direction}_map_at_r"] = 100 * eccv["eccv_map_at_r"][direction]
        figures[f"eccv-caption/{direction}_rprecision"] = 100 * eccv["eccv_rprecision"][direction]
        for ground, name in (("eccv", "eccv-caption"), ("cxc", "cxc")):
            for k in (1, 5, 10):
                figures[f"{name}/{direction}_r{k}"] = 100 * recalls[ground][k][direction]
    assert figures["eccv-caption/i2t_r1"] == pytest.approx(100 * eccv["eccv_r1"]["i2t"])
    return figures


def package_recalls(package: Metrics, ground: str, i2t: dict, t2i: dict, k: int) -> dict[str, float]:
    return getattr(package, f"{ground}_recalls")({"i2t": i2t, "t2i": t2i}, "all", K=k)


def our_metrics(scores: np.ndarray, split: RetrievalSplit) -> dict[str, float]:
    figures = {}
    for protocol in (eccv_caption(), cxc()):
        bound = protocol.for_split(split)
        figures.update({f"{protocol.name}/{key}": value for key, value in bound.metrics(scores, split.image_of_caption).items()})
    return figures


def perfect_scores(split: RetrievalSplit) -> np.ndarray:
    """ECCV positives above CxC positives above the rest, each level in a random order without
    ties (a tie's order in a ranked list is arbitrary): perfect for ECCV Caption."""
    image_row = {int(image): row for row, image in enumerate(split.image_ids)}
    caption_row = {int(caption): row for row, caption in enumerate(split.caption_ids)}
    scores = np.random.default_rng(2).random((split.n_images, split.n_captions), dtype=np.float32) / 2
    for ground, value in (("cxc", 1.0), ("eccv", 2.0)):
        truth = package_ground_truth(ground)
        for image, captions in truth.i2t.items():
            scores[image_row[image], [caption_row[c] for c in captions if c in caption_row]] += value
    return scores


def assert_agree(ours: dict[str, float], theirs: dict[str, float]) -> None:
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key


def test_a_perfect_ranking_scores_as_the_package_counts_it(coco_5k_split):
    scores = perfect_scores(coco_5k_split)
    ours = our_metrics(scores, coco_5k_split)
    assert_agree(ours, package_metrics(*ranked_ids(scores, coco_5k_split)))
    assert ours["eccv-caption/i2t_r1"] == 100.0
    assert 99.5 < ours["eccv-caption/i2t_map_at_r"] < 100.0  # two positives lie outside the 5K captions


def test_a_shuffled_ranking_scores_as_the_package_counts_it(coco_5k_split):
    scores = np.random.default_rng(1).random((coco_5k_split.n_images, coco_5k_split.n_captions), dtype=np.float32)
    ours = our_metrics(scores, coco_5k_split)
    assert_agree(ours, package_metrics(*ranked_ids(scores, coco_5k_split)))
    assert ours["cxc/rsum"] == pytest.approx(sum(ours[f"cxc/{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10)))

    bound = eccv_caption().for_split(coco_5k_split)
    queried = {int(coco_5k_split.caption_ids[row]) for row in bound.t2i.queries}  # ECCV's queries, as rows of the split
    assert len(bound.i2t.queries) == 1261 and queried == set(package_ground_truth("eccv").t2i)


def test_query_ranks_cover_the_protocol_queries_only():
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.7]])  # 2 images, 3 captions
    protocol = replace(
        eccv_caption(),
        i2t=Direction(np.array([1]), np.array([[1, 2]]), np.array([2])),  # image 1 only: captions 1 and 2
        t2i=Direction(np.array([2]), np.array([[0]]), np.array([1])),  # caption 2 only: image 0
    )
    i2t_rank, i2t_image, t2i_rank = protocol.query_ranks(scores.numpy(), np.array([0, 1, 1]))
    np.testing.assert_array_equal(i2t_image, [1])
    np.testing.assert_array_equal(i2t_rank, [0])
    np.testing.assert_array_equal(t2i_rank, [-1, -1, 1])  # caption 2 ranks image 1 (0.7) above image 0 (0.5)
    metrics = protocol.metrics(scores.numpy(), np.array([0, 1, 1]))
    assert metrics["i2t_r1"] == 100 and metrics["t2i_r1"] == 0 and metrics["t2i_r5"] == 100
    assert metrics["i2t_map_at_r"] == 100 and metrics["t2i_rprecision"] == 0


def test_ties_with_a_negative_go_for_the_query_or_against_it():
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.1]])  # candidate 1 (a negative) ties positive 2
    direction = Direction(np.array([0]), np.array([[2, 3]]), np.array([3]))  # R = 3: one positive unreachable
    optimistic = positive_positions(scores, direction, "optimistic")
    pessimistic = positive_positions(scores, direction, "pessimistic")
    np.testing.assert_array_equal(optimistic, [[2, 4]])
    np.testing.assert_array_equal(pessimistic, [[3, 4]])
    assert precision_metrics(optimistic, direction.counts) == pytest.approx({"map_at_r": 100 * (1 / 2) / 3, "rprecision": 100 / 3})
    np.testing.assert_array_equal(positive_positions(scores, direction, "pessimistic", all_positives=False), [[3]])


def test_positions_beyond_r_are_found_from_the_top_scores_alone():
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.3, 0.1]])  # positives 1 (tied with 4 negatives) and 6
    direction = Direction(np.array([0]), np.array([[1, 6]]), np.array([2]))  # R = 2: 5 top scores searched of 8
    np.testing.assert_array_equal(positive_positions(scores, direction, "optimistic"), [[2, np.inf]])  # truly 2 and 7
    np.testing.assert_array_equal(positive_positions(scores, direction, "pessimistic"), [[6, np.inf]])  # truly 6 and 7

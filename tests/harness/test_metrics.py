"""Retrieval metrics: the rank conventions of the VSE evaluation code (docs/experiments.md, "Metrics")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.retrieval import RetrievalHitRate

from harness.metrics import metrics_from_ranks, positive_ranks, recall_metrics

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_KEYS = [
    "i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum",
    "i2t_medr", "i2t_meanr", "t2i_medr", "t2i_meanr",
]  # fmt: skip


def five_captions_each(n_images: int) -> np.ndarray:
    """The VSE layout: captions 5i..5i+4 describe image i. int64 [5 * n_images]."""
    return np.repeat(np.arange(n_images), 5)


def positive_mask(image_of_caption: np.ndarray, n_images: int) -> np.ndarray:
    """bool [n_images, n_captions], True where caption c describes image i."""
    return np.arange(n_images)[:, None] == image_of_caption[None, :]


def random_uneven_captions(rng: np.random.Generator, n_images: int) -> np.ndarray:
    """0..7 captions per image (image 1 always has none), shuffled. int64 [n_captions]."""
    counts = rng.integers(0, 8, size=n_images)
    counts[0], counts[1] = max(counts[0], 1), 0
    return rng.permutation(np.repeat(np.arange(n_images), counts))


def argsort_reference_ranks(scores: np.ndarray, image_of_caption: np.ndarray):
    """Per-query sort as the VSE evaluation code does it; exact for scores without ties."""
    i2t = []
    for image in range(scores.shape[0]):
        captions = np.flatnonzero(image_of_caption == image)
        if captions.size:
            order = np.argsort(scores[image])[::-1]
            i2t.append(np.flatnonzero(np.isin(order, captions))[0])
    t2i = [
        np.flatnonzero(np.argsort(scores[:, caption])[::-1] == image)[0]
        for caption, image in enumerate(image_of_caption)
    ]
    return np.array(i2t), np.array(t2i)


def test_perfect_retrieval_gives_100_everywhere_rsum_600_and_medr_1():
    image_of_caption = five_captions_each(4)
    scores = positive_mask(image_of_caption, 4).astype(np.float32)

    metrics = recall_metrics(scores, image_of_caption)

    assert list(metrics) == DEFAULT_KEYS
    assert all(metrics[f"{d}_r{k}"] == 100.0 for d in ("i2t", "t2i") for k in (1, 5, 10))
    assert metrics["rsum"] == 600.0
    assert metrics["i2t_medr"] == metrics["t2i_medr"] == 1.0
    assert metrics["i2t_meanr"] == metrics["t2i_meanr"] == 1.0


def test_reversed_scores_put_every_positive_behind_all_negatives():
    n_images = 12
    image_of_caption = five_captions_each(n_images)
    scores = -positive_mask(image_of_caption, n_images).astype(np.float32)

    i2t, t2i = positive_ranks(scores, image_of_caption)
    metrics = recall_metrics(scores, image_of_caption)

    assert (i2t == 5 * n_images - 5).all()  # every other image's captions score higher
    assert (t2i == n_images - 1).all()
    assert metrics["rsum"] == 0.0
    assert metrics["i2t_medr"] == metrics["i2t_meanr"] == 5 * n_images - 4
    assert metrics["t2i_medr"] == metrics["t2i_meanr"] == n_images


def test_exact_ties_with_the_positive_count_in_the_querys_favour():
    scores = np.array(
        [
            [0.5, 0.5, 0.9, 0.5],  # image 0 (caption 0): one caption strictly above, two tied
            [0.5, 0.5, 0.5, 0.5],  # image 1 (caption 1): everything tied
        ],
        dtype=np.float32,
    )
    image_of_caption = [0, 1, 1, 1]

    i2t, t2i = positive_ranks(scores, image_of_caption)

    assert i2t.tolist() == [1, 0]  # image 0: only the 0.9 counts, not its two 0.5 ties
    assert t2i.tolist() == [0, 0, 1, 0]  # caption 2: image 0's 0.9 beats it; equal scores do not
    all_equal = recall_metrics(np.zeros((3, 15), dtype=np.float32), five_captions_each(3))
    assert all_equal["rsum"] == 600.0  # the documented caveat: collapsed scores look perfect


def test_i2t_rank_is_the_rank_of_the_best_of_the_images_captions():
    scores = np.array(
        [
            [0.1, 0.9, 0.2, 0.5, 0.3],  # image 0 owns captions 0, 2, 4: best is 0.3
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ],
        dtype=np.float32,
    )
    image_of_caption = [0, 1, 0, 1, 0]

    i2t, _ = positive_ranks(scores, image_of_caption)

    assert i2t[0] == 2  # only 0.9 and 0.5 beat 0.3; its worse captions 0.1 and 0.2 do not count


def test_uneven_captions_per_image_and_an_image_without_captions():
    # image 0: 1 caption, image 1: 3 captions, image 2: none, image 3: 2 captions
    image_of_caption = np.array([1, 0, 3, 1, 1, 3])
    scores = np.array(
        [
            [0.2, 0.8, 0.1, 0.3, 0.0, 0.1],
            [0.7, 0.1, 0.2, 0.1, 0.3, 0.75],
            [0.9, 0.9, 0.9, 0.9, 0.9, 0.9],  # captionless image 2 outscores every positive
            [0.1, 0.45, 0.4, 0.2, 0.5, 0.3],
        ],
        dtype=np.float32,
    )

    i2t, t2i = positive_ranks(scores, image_of_caption)

    assert i2t.tolist() == [0, 1, 2]  # images 0, 1, 3; image 2 is no query
    assert t2i.tolist() == [1, 1, 1, 3, 2, 2]  # image 2 is still a candidate for every caption


def test_metrics_from_ranks_hand_computed():
    metrics = metrics_from_ranks([0, 1, 4, 9, 20], [0, 1, 2, 5])

    assert metrics == {
        "i2t_r1": 20.0, "i2t_r5": 60.0, "i2t_r10": 80.0,
        "t2i_r1": 25.0, "t2i_r5": 75.0, "t2i_r10": 100.0,
        "rsum": 360.0,
        "i2t_medr": 5.0, "i2t_meanr": 7.8,
        "t2i_medr": 2.0, "t2i_meanr": 3.0,  # median 1.5 is floored before the +1
    }  # fmt: skip
    assert all(type(value) is float for value in metrics.values())


def test_custom_ks_name_the_recall_keys_and_all_of_them_sum_into_rsum():
    metrics = metrics_from_ranks([0, 3], [1, 1, 50], ks=(2, 100))

    assert list(metrics)[:5] == ["i2t_r2", "i2t_r100", "t2i_r2", "t2i_r100", "rsum"]
    assert metrics["rsum"] == pytest.approx(50.0 + 100.0 + 200 / 3 + 100.0)


def test_ranks_of_caption_slices_concatenate_to_the_metrics_of_the_whole():
    rng = np.random.default_rng(3)
    image_of_caption = five_captions_each(20)
    scores = rng.standard_normal((20, 100)).astype(np.float32)

    i2t, _ = positive_ranks(scores, image_of_caption)
    t2i_slices = [
        positive_ranks(scores[:, start : start + 30], image_of_caption[start : start + 30])[1]
        for start in range(0, 100, 30)
    ]

    assert metrics_from_ranks(i2t, np.concatenate(t2i_slices)) == recall_metrics(
        scores, image_of_caption
    )


@pytest.mark.parametrize(
    ("n_images", "layout"),
    [(1, "five"), (7, "five"), (60, "five"), (9, "uneven"), (40, "uneven")],
)
def test_ranks_match_a_per_query_argsort_reference(n_images: int, layout: str):
    rng = np.random.default_rng(n_images)
    image_of_caption = (
        five_captions_each(n_images) if layout == "five" else random_uneven_captions(rng, n_images)
    )
    scores = rng.standard_normal((n_images, image_of_caption.size)).astype(np.float32)

    i2t, t2i = positive_ranks(scores, image_of_caption, chunk_size=4)
    expected_i2t, expected_t2i = argsort_reference_ranks(scores, image_of_caption)

    np.testing.assert_array_equal(i2t, expected_i2t)
    np.testing.assert_array_equal(t2i, expected_t2i)


@pytest.mark.parametrize("layout", ["five", "uneven"])
def test_recalls_match_torchmetrics_hit_rate_without_ties(layout: str):
    rng = np.random.default_rng(11)
    n_images = 25
    image_of_caption = (
        five_captions_each(n_images) if layout == "five" else random_uneven_captions(rng, n_images)
    )
    scores = torch.from_numpy(rng.standard_normal((n_images, image_of_caption.size)))
    positives = torch.from_numpy(positive_mask(image_of_caption, n_images))
    image_index = torch.arange(n_images)[:, None].expand_as(scores)
    caption_index = torch.arange(image_of_caption.size)[None, :].expand_as(scores)

    metrics = recall_metrics(scores, image_of_caption)

    for k in (1, 5, 10):
        # "skip": an image without captions is no i2t query, as in positive_ranks
        hit_rate = RetrievalHitRate(top_k=k, empty_target_action="skip")
        i2t = hit_rate(scores.flatten(), positives.flatten(), indexes=image_index.flatten())
        t2i = RetrievalHitRate(top_k=k)(
            scores.flatten(), positives.flatten(), indexes=caption_index.flatten()
        )
        assert metrics[f"i2t_r{k}"] == pytest.approx(100 * i2t.item())
        assert metrics[f"t2i_r{k}"] == pytest.approx(100 * t2i.item())


def test_tensor_and_numpy_inputs_give_identical_ranks():
    rng = np.random.default_rng(5)
    image_of_caption = random_uneven_captions(rng, 15)
    scores = rng.standard_normal((15, image_of_caption.size)).astype(np.float32)
    expected = positive_ranks(scores, image_of_caption)

    inputs = [
        (torch.from_numpy(scores), torch.from_numpy(image_of_caption)),
        (torch.from_numpy(scores).double().requires_grad_(), image_of_caption.tolist()),
        (scores.astype(np.float64), image_of_caption.astype(np.int32)),
    ]
    for score_input, index_input in inputs:
        i2t, t2i = positive_ranks(score_input, index_input)
        assert i2t.dtype == t2i.dtype == np.int64
        np.testing.assert_array_equal(i2t, expected[0])
        np.testing.assert_array_equal(t2i, expected[1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_tensors_are_ranked_in_their_own_dtype(dtype: torch.dtype):
    rng = np.random.default_rng(8)
    image_of_caption = five_captions_each(10)
    scores = rng.integers(0, 64, size=(10, 50)) / 8  # exact in both dtypes, with ties

    i2t, t2i = positive_ranks(torch.from_numpy(scores).to(dtype), image_of_caption)
    expected_i2t, expected_t2i = positive_ranks(scores, image_of_caption)

    np.testing.assert_array_equal(i2t, expected_i2t)
    np.testing.assert_array_equal(t2i, expected_t2i)


def test_negative_stride_and_read_only_arrays_are_accepted_without_warnings(recwarn):
    scores = np.random.default_rng(2).standard_normal((6, 30)).astype(np.float32)
    image_of_caption = five_captions_each(6)
    read_only = scores.copy()
    read_only.flags.writeable = False
    expected_i2t, expected_t2i = positive_ranks(scores, image_of_caption)

    flipped_i2t, flipped_t2i = positive_ranks(scores[::-1], 5 - image_of_caption)  # image i -> 5-i
    _, reversed_captions_t2i = positive_ranks(scores[:, ::-1], image_of_caption[::-1])
    read_only_i2t, _ = positive_ranks(read_only, image_of_caption)

    np.testing.assert_array_equal(flipped_i2t, expected_i2t[::-1])
    np.testing.assert_array_equal(flipped_t2i, expected_t2i)
    np.testing.assert_array_equal(reversed_captions_t2i, expected_t2i[::-1])
    np.testing.assert_array_equal(read_only_i2t, expected_i2t)
    assert not [w for w in recwarn if "writable" in str(w.message)]


@settings(max_examples=60, deadline=None)
@given(
    n_images=st.integers(1, 10),
    n_captions=st.integers(1, 25),
    chunk_size=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_chunk_size_does_not_change_ranks(
    n_images: int, n_captions: int, chunk_size: int, seed: int
):
    rng = np.random.default_rng(seed)
    image_of_caption = rng.integers(0, n_images, size=n_captions)
    scores = rng.integers(0, 3, size=(n_images, n_captions)).astype(np.float32)  # many ties

    chunked = positive_ranks(scores, image_of_caption, chunk_size=chunk_size)
    one_block = positive_ranks(scores, image_of_caption, chunk_size=n_images)

    np.testing.assert_array_equal(chunked[0], one_block[0])
    np.testing.assert_array_equal(chunked[1], one_block[1])


def test_importing_the_module_does_not_import_torch():
    probe = "import sys, harness.metrics; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("scores", "image_of_caption", "message"),
    [
        (np.zeros(5), [0] * 5, "2-D"),
        (np.zeros((2, 5, 1)), [0] * 5, "2-D"),
        (np.zeros((0, 5)), [0] * 5, "at least one image"),
        (np.zeros((2, 5), dtype=np.int64), [0] * 5, "floating point"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], "NaN"),
        (np.zeros((2, 5)), [0] * 4, "4 entries, scores has 5 columns"),
        (np.zeros((2, 5)), [0, 1, 2, 0, 1], r"\[0, 2\), got values in \[0, 2\]"),
        (np.zeros((2, 5)), [0, -1, 0, 1, 1], r"\[0, 2\)"),
        (np.zeros((2, 5)), [0.0, 1.0, 0.0, 1.0, 1.0], "integer"),
        (np.zeros((2, 5)), [[0, 1, 0, 1, 1]], "1-D"),
    ],
)
def test_positive_ranks_rejects_bad_input_with_a_clear_error(scores, image_of_caption, message):
    with pytest.raises(ValueError, match=message):
        positive_ranks(scores, image_of_caption)


def test_positive_ranks_rejects_a_non_positive_chunk_size():
    with pytest.raises(ValueError, match="chunk_size"):
        positive_ranks(np.zeros((2, 2)), [0, 1], chunk_size=0)


@pytest.mark.parametrize(
    ("i2t_ranks", "t2i_ranks", "ks", "message"),
    [
        ([], [0], (1,), "non-empty"),
        ([0, -1], [0], (1,), ">= 0"),
        ([0.0, 1.0], [0], (1,), "integer"),
        ([0], [0], (), "ks"),
        ([0], [0], (0, 5), "ks"),
        ([0], [0], (5, 5), "ks"),
        ([0], [0], (1.5,), "ks"),
    ],
)
def test_metrics_from_ranks_rejects_bad_input_with_a_clear_error(i2t_ranks, t2i_ranks, ks, message):
    with pytest.raises(ValueError, match=message):
        metrics_from_ranks(i2t_ranks, t2i_ranks, ks=ks)


def test_pessimistic_ties_count_equal_scores_against_the_query():
    collapsed = np.zeros((3, 6), dtype=np.float32)
    captions = [0, 0, 1, 1, 2, 2]
    assert recall_metrics(collapsed, captions)["rsum"] == 600.0
    i2t, t2i = positive_ranks(collapsed, captions, ties="pessimistic")
    assert i2t.tolist() == [4, 4, 4] and t2i.tolist() == [2] * 6  # every negative ranked first


def test_tie_rules_agree_without_ties():
    scores = np.random.default_rng(3).standard_normal((7, 20)).astype(np.float32)
    captions = np.random.default_rng(4).integers(0, 7, 20)
    for optimistic, pessimistic in zip(positive_ranks(scores, captions), positive_ranks(scores, captions, ties="pessimistic")):
        np.testing.assert_array_equal(optimistic, pessimistic)

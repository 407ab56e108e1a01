"""Retrieval metrics from an image-caption score matrix: R@K, rsum, medr, meanr.

The definitions follow the VSE-family evaluation code (VSE++, SCAN, VSE∞: their ``i2t`` /
``t2i`` functions) so numbers are comparable with published tables:

- **Directions.** ``i2t`` (image annotation, caption retrieval): each image is a query, captions
  are the candidates. ``t2i`` (image search): each caption is a query, images are the candidates.
- **Rank** (0-based) of a query = number of candidates scored *strictly higher* than its best
  positive. i2t: ``rank_i = #{c : s_ic > max_{c' of image i} s_ic'}``; t2i:
  ``rank_c = #{i : s_ic > s_{image_of_caption[c], c}}``.
- **R@K** = ``100 * mean(rank < K)``: the percentage of queries with *at least one* positive in
  the top K. This is a hit rate, not true recall: an image with five captions counts as a hit
  when one of them is in the top K. It is what the papers call R@K, so we keep their numbers.
  For t2i (one positive image per caption) hit rate and recall coincide.
- **rsum** = sum of all R@K of both directions (600 is perfect for K = 1, 5, 10).
- **medr** = ``floor(median(rank)) + 1`` and **meanr** = ``mean(rank) + 1``: 1-based, as
  printed by the reference code, so 1 is perfect.
- **Ties** count for the query: a candidate scored *equal* to the positive does not push it
  down (strict ">", optimistic). The reference code orders ties arbitrarily (unstable
  ``np.argsort``), so results agree whenever no score equals a positive score. Caveat: a
  degenerate model whose scores are all equal (collapsed embeddings) scores a perfect 100, so
  ``ties="pessimistic"`` (a tie counts against the query) is offered to bound the damage; the
  harness evaluates both and logs the rsum gap (`harness.evaluation`).

Ranks are counted in one pass over the score matrix, a block of image rows at a time, with no
per-query sort: O(n_images * n_captions) comparisons and bounded extra memory, versus one
O(n log n) sort per query plus a Python loop over 30,000 queries in the reference code.
Torch is imported inside the functions so that importing this module (e.g. for ``itr --help``)
stays fast.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Sequence

import numpy as np

KS = (1, 5, 10)
"""The Recall@K cut-offs of every published table."""

RECALLS = tuple(f"{direction}_r{k}" for direction in ("i2t", "t2i") for k in KS)
"""The six recalls rSum adds up: ``i2t_r1`` … ``t2i_r10``."""

RSUM = "rsum"

MEDIAN_RANKS = ("i2t_medr", "t2i_medr")
"""Median ranks (1-based; lower is better)."""

if TYPE_CHECKING:
    import torch


def positive_ranks(
    scores: torch.Tensor | np.ndarray,
    image_of_caption: torch.Tensor | np.ndarray | Sequence[int],
    *,
    chunk_size: int = 128,
    ties: str = "optimistic",
) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of the best positive for every image query and every caption query.

    Args:
        scores: float [n_images, n_captions], ``s_ic`` = score of image i with caption c; a torch
            tensor on any device (the counting runs there, in its dtype) or a numpy array.
        image_of_caption: int [n_captions], the image each caption describes. Any number of
            captions per image, in any order.
        chunk_size: image rows compared at once. Peak extra memory is one float block of
            ``chunk_size * n_captions`` (float32: 12.8 MB for COCO-5K's 25,000 captions at the
            default, 2.6% of the matrix) plus a few [n_images] and [n_captions] vectors. Small
            blocks stay in cache; too small ones pay per-block overhead, which grows when other
            processes compete for the CPU threads.
        ties: ``optimistic`` counts strictly higher scores; ``pessimistic`` also counts the
            negatives scored equal to the (best) positive, as if every tie went against it.

    Returns:
        ``(i2t_ranks, t2i_ranks)``, int64 numpy arrays. ``i2t_ranks`` has one entry per image
        *that has at least one caption*, in increasing image order (an image without captions
        has no positive, so it is no query; it stays a candidate for t2i). Map entries back to
        image indices with ``np.flatnonzero(np.bincount(image_of_caption, minlength=n_images))``.
        ``t2i_ranks`` has one entry per caption, [n_captions].

    By default ties are counted optimistically (strict ">"); see the module docstring.

    Raises:
        ValueError: scores not a non-empty 2-D float matrix or containing NaN; image_of_caption
            not 1-D integer, not of length n_captions, or with an index outside [0, n_images).
        ValueError: chunk_size < 1.
    """
    import torch

    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if ties not in ("optimistic", "pessimistic"):
        raise ValueError(f"ties must be 'optimistic' or 'pessimistic', got {ties!r}")
    beats = torch.gt if ties == "optimistic" else torch.ge
    score_matrix = _as_score_tensor(scores)
    n_images, n_captions = score_matrix.shape
    device = score_matrix.device
    caption_image = _as_caption_index(image_of_caption, n_images, n_captions, device)

    # t2i positive: the caption's own image. i2t positive: the best of the image's captions,
    # a scatter-max of the same values grouped by image (-inf for images without captions).
    caption_positive = score_matrix.gather(0, caption_image[None, :])[0]  # [n_captions]
    image_positive = torch.full(
        (n_images,), float("-inf"), dtype=score_matrix.dtype, device=device
    ).scatter_reduce(0, caption_image, caption_positive, reduce="amax")  # [n_images]

    # Counts are summed from a reused float block: exact for integers up to 2**24, and unlike a
    # bool mask, whose sum first makes an int64 copy of the block, a float sum reads it in place.
    count_dtype = torch.float32 if max(n_images, n_captions) <= 2**24 else torch.float64
    above = torch.empty((min(chunk_size, n_images), n_captions), dtype=count_dtype, device=device)
    i2t_counts = torch.empty(n_images, dtype=count_dtype, device=device)
    t2i_counts = torch.zeros(n_captions, dtype=count_dtype, device=device)
    for start in range(0, n_images, chunk_size):
        stop = min(start + chunk_size, n_images)
        block, mask = score_matrix[start:stop], above[: stop - start]  # [chunk, n_captions]
        beats(block, image_positive[start:stop, None], out=mask)
        torch.sum(mask, dim=1, out=i2t_counts[start:stop])
        beats(block, caption_positive[None, :], out=mask)
        t2i_counts += mask.sum(dim=0)
    if ties == "pessimistic":  # positives are not negatives: discount those counted as ties
        best_positives = (caption_positive == image_positive[caption_image]).to(count_dtype)
        i2t_counts -= torch.zeros_like(i2t_counts).index_add_(0, caption_image, best_positives)
        t2i_counts -= 1

    has_caption = torch.bincount(caption_image, minlength=n_images) > 0
    i2t_ranks = i2t_counts[has_caption].to(torch.int64).cpu().numpy()
    return i2t_ranks, t2i_counts.to(torch.int64).cpu().numpy()


def recall_metrics(
    scores: torch.Tensor | np.ndarray,
    image_of_caption: torch.Tensor | np.ndarray | Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
    ties: str = "optimistic",
) -> dict[str, float]:
    """R@K for both directions, rsum, medr and meanr of a score matrix (the VSE evaluation code's).

    Args:
        scores: float [n_images, n_captions], tensor (any device) or numpy array.
        image_of_caption: int [n_captions], the image each caption describes.
        ks: cut-offs K of the hit rates.
        ties: ``optimistic`` (default, as the papers) or ``pessimistic``; see `positive_ranks`.

    Returns:
        ``{i2t_r1, i2t_r5, i2t_r10, t2i_r1, t2i_r5, t2i_r10, rsum, i2t_medr, i2t_meanr,
        t2i_medr, t2i_meanr}`` for the default ks (one ``{direction}_r{K}`` per K otherwise);
        see `metrics_from_ranks`.
    """
    return metrics_from_ranks(*positive_ranks(scores, image_of_caption, ties=ties), ks=ks)


def metrics_from_ranks(
    i2t_ranks: np.ndarray | Sequence[int],
    t2i_ranks: np.ndarray | Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Metrics from 0-based ranks: ranks computed per fold or per query slice give the same numbers.

    Concatenating the ranks of disjoint query slices (against the same candidates) gives exactly
    the metrics of the whole. The COCO 5-fold 1K protocol instead ranks within each fold and
    averages the per-fold dicts (rsum = mean of the fold rsums).

    Args:
        i2t_ranks: int [n_image_queries], >= 0, e.g. from `positive_ranks`.
        t2i_ranks: int [n_caption_queries], >= 0.
        ks: distinct positive cut-offs K.

    Returns:
        Plain floats: ``{direction}_r{K}`` = 100 * fraction of queries with rank < K for
        direction i2t then t2i, ``rsum`` = sum of all of them, then per direction
        ``{direction}_medr`` = floor(median(rank)) + 1 and ``{direction}_meanr`` = mean(rank) + 1.

    Raises:
        ValueError: empty, non-integer, non-1-D or negative ranks; empty, non-positive or
            repeated ks.
    """
    valid_k = [isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1 for k in ks]
    if not ks or not all(valid_k) or len(set(ks)) != len(ks):
        raise ValueError(f"ks must be distinct positive integers, got {tuple(ks)}")
    ranks = {
        "i2t": _as_rank_array(i2t_ranks, "i2t_ranks"),
        "t2i": _as_rank_array(t2i_ranks, "t2i_ranks"),
    }

    metrics = {
        f"{direction}_r{k}": float(100.0 * np.mean(direction_ranks < k))
        for direction, direction_ranks in ranks.items()
        for k in ks
    }
    metrics["rsum"] = float(sum(metrics.values()))
    for direction, direction_ranks in ranks.items():
        metrics[f"{direction}_medr"] = float(np.floor(np.median(direction_ranks)) + 1)
        metrics[f"{direction}_meanr"] = float(np.mean(direction_ranks) + 1)
    return metrics


def _as_score_tensor(scores: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A validated, detached view of `scores` [n_images, n_captions], not a copy.

    Only arrays with negative strides (e.g. ``scores[::-1]``) are copied: torch cannot view them.
    """
    import torch

    if isinstance(scores, torch.Tensor):
        matrix = scores.detach()
    else:
        array = np.asarray(scores)
        if any(stride < 0 for stride in array.strides):
            array = array.copy()
        with warnings.catch_warnings():  # read-only arrays (memmaps) are fine: we never write
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            matrix = torch.from_numpy(array)
    shape = tuple(matrix.shape)
    if matrix.ndim != 2:
        raise ValueError(f"scores must be 2-D [n_images, n_captions], got shape {shape}")
    if 0 in shape:
        raise ValueError(f"scores must have at least one image and one caption, got shape {shape}")
    if not matrix.is_floating_point():
        raise ValueError(f"scores must be floating point, got {matrix.dtype}")
    if torch.isnan(matrix.amax()):  # amax propagates NaN without a full-size temporary
        raise ValueError("scores contain NaN; ranks against NaN are undefined")
    return matrix


def _as_caption_index(
    image_of_caption: torch.Tensor | np.ndarray | Sequence[int],
    n_images: int,
    n_captions: int,
    device: torch.device,
) -> torch.Tensor:
    """`image_of_caption` as a validated int64 tensor [n_captions] on `device`."""
    import torch

    if isinstance(image_of_caption, torch.Tensor):
        index = image_of_caption
    else:
        index = torch.as_tensor(np.ascontiguousarray(image_of_caption))  # small: copying is cheap
    if index.ndim != 1:
        raise ValueError(f"image_of_caption must be 1-D, got shape {tuple(index.shape)}")
    if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
        raise ValueError(f"image_of_caption must hold integer image indices, got {index.dtype}")
    if index.shape[0] != n_captions:
        raise ValueError(
            f"image_of_caption has {index.shape[0]} entries, scores has {n_captions} columns"
        )
    index = index.to(device=device, dtype=torch.int64)
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= n_images:
        raise ValueError(
            f"image_of_caption must lie in [0, {n_images}), got values in [{low}, {high}]"
        )
    return index


def _as_rank_array(ranks: np.ndarray | Sequence[int], name: str) -> np.ndarray:
    """`ranks` as a validated 1-D integer numpy array [n_queries]."""
    array = np.asarray(ranks)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer ranks, got {array.dtype}")
    if array.min() < 0:
        raise ValueError(f"{name} must be 0-based ranks >= 0, got minimum {array.min()}")
    return array

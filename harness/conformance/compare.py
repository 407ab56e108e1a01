"""Comparing outputs item by item, with a failure message that says where and by how much.

Tolerances are float32 ones: a component may compute a block of pairs in another order than the
whole matrix (different summation order), which moves the last bits, never more.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.conformance.report import CheckFailed
from harness.embeddings import Embeddings, VectorSets

RTOL, ATOL = 1e-4, 1e-5


def _gap(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, tuple[int, ...]]:
    """Largest tolerance excess and its index (multi-dimensional)."""
    excess = (actual - expected).abs() - (ATOL + RTOL * expected.abs())
    flat = int(excess.argmax())
    return float((actual - expected).abs().flatten()[flat]), tuple(int(i) for i in np.unravel_index(flat, excess.shape))


def require_close(actual: torch.Tensor, expected: torch.Tensor, what: str, index_names: tuple[str, ...] = ()) -> None:
    """Raise CheckFailed naming `what` and the first entry that moved beyond tolerance.

    index_names label the axes in the message, e.g. ("image", "caption") for a score matrix.
    """
    if actual.shape == expected.shape and actual.dtype == expected.dtype and torch.equal(actual.detach().cpu(), expected.detach().cpu()):
        return
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    if actual.shape != expected.shape:
        raise CheckFailed(f"{what}: shape {list(actual.shape)} instead of {list(expected.shape)}")
    if torch.allclose(actual, expected, rtol=RTOL, atol=ATOL, equal_nan=True):
        return
    size, index = _gap(actual, expected)
    where = ", ".join(f"{name} {i}" for name, i in zip(index_names, index)) if index_names else f"entry {list(index)}"
    raise CheckFailed(
        f"{what}: ({where}) moved by {size:.3g} ({float(expected[index]):.6g} -> {float(actual[index]):.6g})"
    )


def require_same_items(actual: Embeddings, expected: Embeddings, what: str) -> None:
    """Item k of `actual` equals item k of `expected`: global vectors [n, D], or vector sets
    compared on their real rows (lengths, vectors up to each length, summary)."""
    if isinstance(expected, VectorSets) != isinstance(actual, VectorSets):
        raise CheckFailed(f"{what}: {type(actual).__name__} instead of {type(expected).__name__}")
    if not isinstance(expected, VectorSets):
        require_close(actual, expected, what, ("item", "dim") if expected.dim() == 2 else ())
        return
    if not torch.equal(actual.lengths.cpu(), expected.lengths.cpu()):
        raise CheckFailed(f"{what}: set lengths {actual.lengths.tolist()} instead of {expected.lengths.tolist()}")
    width = int(expected.lengths.max()) if len(expected) else 0
    mask = expected.mask()[:, :width, None].cpu()
    require_close(
        actual.vectors[:, :width].cpu() * mask, expected.vectors[:, :width].cpu() * mask, what, ("item", "row", "dim")
    )
    if (actual.summary is None) != (expected.summary is None):
        raise CheckFailed(f"{what}: the summary vector comes and goes")
    if expected.summary is not None:
        require_close(actual.summary, expected.summary, f"{what} (summary)", ("item", "dim"))


def require_finite(tensor: torch.Tensor, what: str) -> None:
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise CheckFailed(f"{what}: {bad} of {tensor.numel()} values are NaN or infinite")

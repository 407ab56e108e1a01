"""Scoring within the memory there is: the score chunk halves on out of memory and retries.

Evaluation scores blocks of ``eval.score_chunk`` images × captions (`harness.evaluation.scoring`,
a re-rank's prefilter). A block that runs out of memory (CUDA's ``OutOfMemoryError``, or the CPU
allocator refusing) is dropped, the chunk halved and the work it was part of (a band of images
against every caption; a block of queries) done again in smaller blocks; the chunk stays halved
for the rest of the evaluation. The built-in heads score each
pair independently of the rest of the block, so the scores are the same whatever chunk ran.

On the CPU, where running out of memory means swapping or the kernel's OOM killer rather than
an exception, ``eval.memory_budget_mb`` bounds a block's working memory up front: two small
probe blocks (c = s and 2s) are scored while the bytes of every tensor the head keeps alive are
counted, the peak is fitted as α·c + β·c² (the c-linear terms: per-item work such as
normalising; the c² terms: per-pair work such as SCAN's [c, c, R, W] attention), and the chunk
halved until the fitted peak of one block fits. The count misses memory an op frees before it
returns (its internal workspace), and it does not cover the embeddings or the result matrix,
which do not depend on the chunk.

A chunk that cannot shrink further fails the job with one line naming the setting to change.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from harness.errors import UserError

T = TypeVar("T")

PROBE = 8
"""Items per side of the smaller probe block a memory budget is fitted on (the other: twice as many)."""

SCORE_CHUNK_USED = "eval_score_chunk_used"
"""The score chunk a job's evaluation ended with, logged beside its metrics."""


class OutOfMemory(UserError):
    """Evaluation does not fit in memory even at the smallest setting: one line, the job FAILED."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed: CUDA (or another accelerator) out of
    memory, or the CPU allocator refusing (torch's ``DefaultCPUAllocator``, numpy's MemoryError)."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):  # since torch 2.5 also MPS's
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


class ScoreChunk:
    """The block size scoring uses: `size` images (or queries) × `size` captions, halved on out
    of memory for the rest of the evaluation.

    Args:
        size: the configured ``eval.score_chunk``.
        budget_mb: ``eval.memory_budget_mb``; None: no budget (only real allocation failures halve).
    """

    def __init__(self, size: int, budget_mb: float | None = None) -> None:
        self.configured = self.size = size
        self.budget_mb = budget_mb

    def attempt(self, run: Callable[[int], T]) -> T:
        """`run(size)`, halving `size` and calling it again for as long as it runs out of memory.

        `run` must leave nothing half-done that a retry at the smaller size would not redo.
        """
        while True:
            try:
                return run(self.size)
            except Exception as error:  # noqa: BLE001 (anything else is re-raised at once)
                if not is_out_of_memory(error):
                    raise
            # outside the except block: the traceback no longer holds the failed block's tensors
            self._halve("after out of memory")

    def fit_budget(self, probe: Callable[[int], Any], largest: int) -> None:
        """Lower `size` until a block's fitted peak (probed by `probe(c)`, a block of c × c, for
        c = s and 2s with s ≤ `largest` / 2) fits ``eval.memory_budget_mb``; nothing without a budget."""
        if not self.budget_mb:
            return
        small = max(1, min(PROBE, largest // 2))
        m1, m2 = peak_bytes(lambda: probe(small)), peak_bytes(lambda: probe(2 * small))
        quadratic = max(0.0, (m2 - 2 * m1) / (2 * small**2))
        linear = max(0.0, (m1 - quadratic * small**2) / small)

        def needs_mb(chunk: int) -> float:
            return (linear * chunk + quadratic * chunk**2) / 2**20

        size = self.size
        while needs_mb(size) > self.budget_mb:
            if size == 1:
                raise OutOfMemory(
                    f"eval.memory_budget_mb = {self.budget_mb:g}: scoring one image against one caption needs about "
                    f"{needs_mb(1):.2f} MB; raise eval.memory_budget_mb"
                )
            size //= 2
        if size < self.size:
            self._shrink(size, f"to fit eval.memory_budget_mb = {self.budget_mb:g} (about {needs_mb(size):.2f} MB a block)")

    def _halve(self, reason: str) -> None:
        if self.size == 1:
            raise OutOfMemory(
                f"out of memory scoring at eval.score_chunk = 1 (configured {self.configured}): one pair does not fit "
                "beside the split's embeddings; free the device, set eval.amp = true, or set eval.device = \"cpu\""
            )
        self._shrink(self.size // 2, reason)

    def _shrink(self, size: int, reason: str) -> None:
        print(f"warning: eval.score_chunk {self.size} → {size} {reason}", file=sys.stderr)
        self.size = size
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@contextmanager
def naming(setting: str, value: Any, what: str) -> Iterator[None]:
    """Out of memory inside becomes a one-line `OutOfMemory` naming the setting to lower,
    e.g. ``naming("eval.batch_size", 256, "embedding the test split")``."""
    try:
        yield
        return
    except Exception as error:  # noqa: BLE001 (anything else is re-raised as it is)
        if not is_out_of_memory(error):
            raise
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    raise OutOfMemory(f"out of memory {what} at {setting} = {value}: lower {setting}")


def peak_bytes(run: Callable[[], Any]) -> int:
    """The largest total size, at any op boundary, of the tensors `run()` allocated and still held
    (its result included); tensors that existed before, and views of them, are not counted."""
    with _LiveTensors() as meter:
        result = run()
        meter.observe()
    del result
    return meter.peak


class _LiveTensors(TorchDispatchMode):
    """Tracks the storages the ops run under it allocate, and the peak of their total size."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self._forget_freed()
        inputs = {_storage_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and (key := _storage_key(tensor)) not in inputs and key not in self.live:
                storage = tensor.untyped_storage()
                self.live[key] = (StorageWeakRef(storage), storage.nbytes())
        self.observe()
        return out

    def observe(self) -> None:
        self._forget_freed()
        self.peak = max(self.peak, sum(size for _, size in self.live.values()))


    def _forget_freed(self) -> None:
        # before new storages are added: a freed storage's address may be reused at once
        self.live = {key: entry for key, entry in self.live.items() if not entry[0].expired()}


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata

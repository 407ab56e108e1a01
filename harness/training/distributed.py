"""One job trained data-parallel by several processes (one per GPU; gloo processes on a CPU).

Every process holds the whole model and reads its share of each global batch: rank r the r-th
of `size` equal slices. The embeddings of the slices are gathered into the global batch before
scoring, the gather passing gradients back to each slice (D2S-VSE's ``GatherLayer``), so every
process computes the same loss over the same in-batch negatives a single process would. Gradients
are then averaged over the processes: the all-gather's backward sums each slice's gradient over
the `size` identical losses, and the average takes that factor out again, so an optimiser step
equals the single-process step on the global batch. Rank 0 draws the batch order and sends it to
the others; only rank 0 logs and checkpoints.

A model whose training draws random numbers per item (dropout, size augmentation) draws them
per process, so it follows a different, equally valid random stream than one process would;
batch norms see the local slice (on CUDA they are converted to `SyncBatchNorm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.embeddings import Embeddings, VectorSets


@dataclass(frozen=True)
class World:
    """This process's place among the job's training processes (rank 0 of 1: no parallelism)."""

    rank: int = 0
    size: int = 1

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def local(self, items: torch.Tensor) -> torch.Tensor:
        """This process's slice of a global batch (its length is a multiple of `size`)."""
        return items.tensor_split(self.size)[self.rank] if self.parallel else items

    def same_order(self, order: torch.Tensor) -> torch.Tensor:
        """Rank 0's `order` on every process (an epoch's permutation of the items)."""
        if self.parallel:
            torch.distributed.broadcast(order, src=0)
        return order

    def gather(self, local: Embeddings) -> Embeddings:
        """The global batch's embeddings from every process's slice, in rank order; gradients
        flow back to each process's own slice."""
        if not self.parallel:
            return local
        if isinstance(local, VectorSets):
            return self._gather_sets(local)
        return _GatherWithGradient.apply(local.contiguous())

    def _gather_sets(self, local: VectorSets) -> VectorSets:
        """Sets padded to the widest slice's width, then gathered like vectors."""
        width = torch.tensor(local.vectors.shape[1], device=local.vectors.device)
        torch.distributed.all_reduce(width, op=torch.distributed.ReduceOp.MAX)
        padding = int(width) - local.vectors.shape[1]
        vectors = nn.functional.pad(local.vectors, (0, 0, 0, padding))
        lengths = [torch.empty_like(local.lengths) for _ in range(self.size)]
        torch.distributed.all_gather(lengths, local.lengths.contiguous())
        summary = None if local.summary is None else self.gather(local.summary)
        return VectorSets(self.gather(vectors), torch.cat(lengths), summary)

    def average_gradients(self, model: nn.Module) -> None:
        """Every trainable parameter's gradient averaged over the processes, in one flat buffer."""
        if not self.parallel:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()


class _GatherWithGradient(torch.autograd.Function):
    """All-gather whose backward hands each process the gradient of its own slice, summed over
    the processes' losses (D2S-VSE's and BLIP's ``GatherLayer``)."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(local) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(parts, local)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        return grad.tensor_split(torch.distributed.get_world_size())[torch.distributed.get_rank()]


def whole_batches(batches: list[torch.Tensor], world: World) -> list[torch.Tensor]:
    """Each batch cut to a multiple of the processes (only an epoch's last batch can be uneven)."""
    if not world.parallel:
        return batches
    cut = [batch[: len(batch) - len(batch) % world.size] for batch in batches]
    return [batch for batch in cut if len(batch) >= 2 * world.size]


def join(model: nn.Module, world: World, device: torch.device) -> None:
    """Make `model` the same on every process: rank 0's parameters and buffers (each process
    built it from the job's seed, so they agree already; this makes it certain), and, on CUDA,
    batch norms synchronised across the processes."""
    if not world.parallel:
        return
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for tensor in [*model.parameters(), *model.buffers()]:
        torch.distributed.broadcast(tensor.data, src=0)

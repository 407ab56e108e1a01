"""Where a model's image inputs come from, batch by batch: cached features or decoded pixels.

Training and evaluation ask a feed for the inputs of a list of image-index batches and get one
``{name: Tensor}`` per batch, on the device. Frozen features are rows read from (memory-mapped)
arrays (`gather`, which reads the rows of captions' prepared inputs too). Pixels, for an image encoder that reads them (`harness.capabilities.ReadsPixels`), are
decoded and augmented in `DataLoader` worker processes while the model works on the previous
batch, into pinned memory on CUDA; torch's threads leave those workers their cores.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from harness.errors import UserError
from harness.interfaces import PixelSpec
from harness.pixels import eval_pixels, training_pixels
from harness.training.threads import beside_loader_workers, torch_threads, usable_cpus

PIXELS = "pixels"
"""The input name an encoder that reads pixels receives them under."""


def gather(arrays: Mapping[str, np.ndarray | torch.Tensor], index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    """Rows `index` of every array, as tensors on `device` (reads only those rows of a memmap).

    Floating-point features arrive as float32 whatever their storage (float16 halves a 33 GB
    COCO feature file on disk); integer inputs (token ids, lengths) keep their type.
    """
    rows = index.cpu().numpy()
    out = {}
    for name, value in arrays.items():
        picked = value[index.cpu()] if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value[rows]))
        if picked.is_floating_point():
            picked = picked.float()
        out[name] = picked.to(device, non_blocking=True)
    return out


class ImageFeed(Protocol):
    """The images of one split as a model reads them."""

    def __len__(self) -> int: ...

    def batches(
        self, index_batches: Sequence[torch.Tensor], device: torch.device, *, train: bool, epoch: int = 0, positions: Sequence[torch.Tensor] | None = None
    ) -> Iterator[dict[str, torch.Tensor]]:
        """The inputs of each batch of image indices, in order. `train` asks for training
        augmentation; `epoch` and each item's position in the epoch (`positions`, default: the
        items counted in order; a data-parallel process passes its slice's global positions)
        decide its random draws, with the feed's seed."""


class FeatureFeed:
    """Frozen image features: {name: array [n_images, ...]}, numpy (possibly memory-mapped) or
    tensors; each batch reads only its rows."""

    def __init__(self, features: Mapping[str, Any]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))

    def batches(
        self, index_batches: Sequence[torch.Tensor], device: torch.device, *, train: bool, epoch: int = 0, positions: Sequence[torch.Tensor] | None = None
    ) -> Iterator[dict[str, torch.Tensor]]:
        return (gather(self.features, index, device) for index in index_batches)


class PixelFeed:
    """Image files decoded for an encoder that reads pixels, in `workers` loader processes
    (0: in this process).

    Each training image's crop and flip are drawn from a generator seeded by (`seed`, epoch,
    the item's position in the epoch), so they are the same whatever the number of workers.
    While the workers decode, the job's torch runs with that many fewer threads
    (`harness.training.threads`), so the model and the loader do not compete for cores.
    """

    def __init__(self, paths: Sequence[Path], spec: PixelSpec, seed: int = 0, workers: int = 0) -> None:
        self.paths, self.spec, self.seed = tuple(paths), spec, seed
        self.workers = min(workers, usable_cpus())  # more processes than cores only contend

    def __len__(self) -> int:
        return len(self.paths)

    def batches(
        self, index_batches: Sequence[torch.Tensor], device: torch.device, *, train: bool, epoch: int = 0, positions: Sequence[torch.Tensor] | None = None
    ) -> Iterator[dict[str, torch.Tensor]]:
        if positions is None:
            starts = itertools.accumulate((len(index) for index in index_batches[:-1]), initial=0)
            positions = [torch.arange(start, start + len(index)) for start, index in zip(starts, index_batches)]
        items = [list(zip(index.tolist(), where.tolist())) for index, where in zip(index_batches, positions)]
        images = _PixelImages(self.paths, self.spec, train, (self.seed, epoch))
        loader = DataLoader(
            images,
            batch_sampler=items,
            num_workers=self.workers,
            pin_memory=device.type == "cuda",
            collate_fn=_stacked,
            generator=torch.Generator(),  # the loader's own seed draw leaves the job's RNG alone
        )
        with torch_threads(beside_loader_workers(self.workers)):
            for batch in loader:
                if isinstance(batch, str):
                    raise UserError(batch)
                yield {PIXELS: batch.to(device, non_blocking=True)}


class _PixelImages(torch.utils.data.Dataset):
    """Item (image index, position in the epoch) -> float32 [3, size, size], or the one-line
    error of an unreadable file (a worker's exception would reach the job as a traceback)."""

    def __init__(self, paths: tuple[Path, ...], spec: PixelSpec, train: bool, seed: tuple[int, int]) -> None:
        self.paths, self.spec, self.train, self.seed = paths, spec, train, seed

    def __getitem__(self, item: tuple[int, int]) -> np.ndarray | str:
        image, position = item
        try:
            if not self.train:
                return eval_pixels(self.paths[image], self.spec)
            rng = np.random.default_rng([*self.seed, position])
            return training_pixels(self.paths[image], self.spec, rng)
        except UserError as exc:
            return str(exc)

    def __len__(self) -> int:
        return len(self.paths)


def _stacked(images: list[np.ndarray | str]) -> torch.Tensor | str:
    """The batch as one tensor, or the first image's error."""
    errors = [image for image in images if isinstance(image, str)]
    return errors[0] if errors else torch.from_numpy(np.stack(images))


def as_feed(images: Any) -> ImageFeed:
    """A split's images as a feed: a feed passes through, a feature mapping is wrapped."""
    return images if hasattr(images, "batches") else FeatureFeed(images)

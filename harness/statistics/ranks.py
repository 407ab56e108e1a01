"""Per-query ranks of one evaluation, and their compact file form."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from harness.atomic import write_atomically
from harness.errors import UserError

TAG_PREFIX = "tag."


@dataclass(frozen=True)
class QueryRanks:
    """The 0-based rank of the first positive of each query (within its fold for fold protocols).

    Attributes:
        n_images: images of the evaluated split.
        i2t_rank, i2t_image: int32 [image queries]: rank, and the image each query is.
        t2i_rank, t2i_image: int32 [captions]: rank, and the image each caption describes.
        caption_words: int32 [captions]: words per caption (whitespace split), for length slices.
        caption_tags: per-caption labels a dataset provides, by tag name, each str [captions].
    """

    n_images: int
    i2t_rank: np.ndarray
    i2t_image: np.ndarray
    t2i_rank: np.ndarray
    t2i_image: np.ndarray
    caption_words: np.ndarray
    caption_tags: Mapping[str, np.ndarray] = field(default_factory=dict)

    def same_queries(self, other: "QueryRanks") -> bool:
        """True when both rank the same image and caption queries (a paired comparison is valid)."""
        return (
            self.n_images == other.n_images
            and np.array_equal(self.i2t_image, other.i2t_image)
            and np.array_equal(self.t2i_image, other.t2i_image)
        )

    def save(self, path: Path) -> Path:
        """Write a compressed ``.npz`` (a few bytes per query), atomically."""
        arrays = {
            "n_images": np.asarray(self.n_images),
            "i2t_rank": self.i2t_rank.astype(np.int32),
            "i2t_image": self.i2t_image.astype(np.int32),
            "t2i_rank": self.t2i_rank.astype(np.int32),
            "t2i_image": self.t2i_image.astype(np.int32),
            "caption_words": self.caption_words.astype(np.int32),
            **{TAG_PREFIX + name: np.asarray(values, dtype=str) for name, values in self.caption_tags.items()},
        }
        return write_atomically(path, lambda staging: np.savez_compressed(staging, **arrays))

    @classmethod
    def load(cls, path: Path) -> "QueryRanks":
        try:
            with np.load(path, allow_pickle=False) as data:
                tags = {key.removeprefix(TAG_PREFIX): data[key] for key in data.files if key.startswith(TAG_PREFIX)}
                return cls(
                    n_images=int(data["n_images"]),
                    i2t_rank=data["i2t_rank"],
                    i2t_image=data["i2t_image"],
                    t2i_rank=data["t2i_rank"],
                    t2i_image=data["t2i_image"],
                    caption_words=data["caption_words"],
                    caption_tags=tags,
                )
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(f"{path}: not a per-query ranks file ({exc})") from None


def caption_word_counts(captions: tuple[str, ...] | list[str]) -> np.ndarray:
    return np.fromiter((len(caption.split()) for caption in captions), dtype=np.int32, count=len(captions))

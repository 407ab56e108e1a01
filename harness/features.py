"""Frozen backbone features, computed once and cached on disk by content hash.

Backbone features dominate the cost of a run on raw images, and every method of an experiment
reads the same ones, so they are computed once per (backbone fingerprint, content) and reused by
every later job and run. A cache entry is a folder of ``.npy`` files, one per feature, written
under a temporary name and renamed into place: an interrupted write never leaves a half entry,
and large arrays are opened memory-mapped instead of read whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from harness.interfaces import RetrievalSplit
from harness.progress import ProgressLog, bar

CACHE_ENV = "ITR_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$ITR_CACHE_DIR``, else ``$XDG_CACHE_HOME/itr-harness/features`` (``~/.cache`` by default)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "itr-harness" / "features"


def file_digest(paths: Sequence[Path]) -> str:
    """sha256 over the bytes of every file, in order: renaming or moving a dataset keeps its cache."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


class FeatureCache:
    """Content-addressed store of named feature arrays.

    Attributes:
        hits, misses: counters, so callers (and tests) can tell a reuse from a recomputation.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0
        self._swept = False

    def key(self, parts: Mapping[str, Any]) -> str:
        canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]

    def get_or_compute(
        self, parts: Mapping[str, Any], compute: Callable[[], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """The cached arrays for `parts` (memory-mapped), computing and storing them on a miss."""
        entry = self.root / self.key(parts)
        cached = self._read(entry)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        arrays = {name: np.ascontiguousarray(value) for name, value in compute().items()}
        self._write(entry, arrays, parts)
        # read back memory-mapped: the computed copy is freed, so memory stays flat however
        # many shards a split has (the first run included), as on every later run
        return self._read(entry) or arrays

    def _read(self, entry: Path) -> dict[str, np.ndarray] | None:
        manifest = entry / "manifest.json"
        if not manifest.is_file():
            return None
        try:
            names = json.loads(manifest.read_text())["arrays"]
            return {name: np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in names}
        except (OSError, ValueError, KeyError) as exc:
            print(f"warning: feature cache entry {entry} is unreadable ({exc}); recomputing", file=sys.stderr)
            shutil.rmtree(entry, ignore_errors=True)
            return None

    def _write(self, entry: Path, arrays: Mapping[str, np.ndarray], parts: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self._swept:
            self._sweep_orphans()
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.{_HOST}.{os.getpid()}.", dir=self.root))
        try:
            for name, value in arrays.items():
                np.save(staging / f"{name}.npy", value, allow_pickle=False)
            (staging / "manifest.json").write_text(json.dumps({"arrays": sorted(arrays), "key": parts}, indent=1))
            try:
                os.rename(staging, entry)
            except OSError:  # another process stored the same entry first: keep theirs
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _sweep_orphans(self) -> None:
        """Remove staging folders left by killed processes of this host (a staging folder is
        named after its host and process id): a killed extraction can leave gigabytes there.
        Other hosts' folders (a shared cache) are left to them."""
        self._swept = True
        for staging in self.root.glob(f".*.{_HOST}.*"):
            match = _STAGING.fullmatch(staging.name)
            if match and match["host"] == _HOST and not _alive(int(match["pid"])):
                shutil.rmtree(staging, ignore_errors=True)


_HOST = platform.node().replace(".", "-") or "host"
_STAGING = re.compile(r"\.[0-9a-f]+\.(?P<host>[^.]+)\.(?P<pid>\d+)\..+")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        pass
    return True


@contextmanager
def own_random_numbers() -> Iterator[None]:
    """Run a frozen backbone on a copy of torch's random state, restored afterwards.

    Whether a backbone runs at all depends on the cache (a miss builds it, initialising weights
    before loading them, and runs it); a job seeded before that must draw the same numbers
    either way, or its result would depend on what the cache happened to hold.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        yield


SHARD_IMAGES = 2048
"""Images per cache entry: an interrupted extraction resumes from the last finished shard."""

SHARD_CAPTIONS = 5 * SHARD_IMAGES
"""Captions per cache entry: a shard of images' worth at COCO's five captions each. Frozen text
tokens of COCO's 566k training captions are tens of GB; one shard is computed in memory at a time."""


class ShardedArray:
    """Row-wise concatenation of arrays (memory-mapped cache shards) without copying them.

    Supports what training and evaluation need: ``len``, ``shape``, ``dtype`` and reading rows
    by an index array or a slice, which touches only the shards that hold those rows. Shards may
    differ in their trailing sizes (text tokens are padded to each shard's longest caption): the
    array is as wide as its widest shard, zero beyond a shard's own width.
    """

    def __init__(self, shards: Sequence[np.ndarray]) -> None:
        self.shards = list(shards)
        self.offsets = np.cumsum([0] + [len(shard) for shard in self.shards])
        self.shape = (int(self.offsets[-1]), *np.max([shard.shape[1:] for shard in self.shards], axis=0).tolist())
        self.dtype = self.shards[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: np.ndarray | slice) -> np.ndarray:
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows)
        shard_of_row = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.zeros((len(rows), *self.shape[1:]), dtype=self.dtype)
        for shard in np.unique(shard_of_row):
            mine = shard_of_row == shard
            block = self.shards[shard][rows[mine] - self.offsets[shard]]
            out[(mine, *(slice(0, size) for size in block.shape[1:]))] = block
        return out


def concatenated(shards: Sequence[Mapping[str, np.ndarray]]) -> Mapping[str, np.ndarray | ShardedArray]:
    """One mapping of arrays over a sequence of cache shards: the shard itself when alone."""
    if len(shards) == 1:
        return shards[0]
    return {name: ShardedArray([shard[name] for shard in shards]) for name in shards[0]}


def each_shard(task: str, starts: range) -> Iterator[int]:
    """The first row of each shard of a long extraction, with a bar on a terminal and a line
    per finished shard in a log (a split of one shard shows neither)."""
    log = ProgressLog(task, len(starts), "shard") if len(starts) > 1 else None
    for start in bar(starts, desc=task, unit="shard", disable=len(starts) < 2):
        yield start
        if log is not None:
            log.advance()


def split_image_features(
    split: RetrievalSplit, backbone: Any, cache: FeatureCache, shard_size: int = SHARD_IMAGES
) -> Mapping[str, np.ndarray | ShardedArray]:
    """Image features of a split: the precomputed arrays, or the backbone's outputs, cached in
    shards of `shard_size` images so a long extraction survives an interruption."""
    if split.image_features is not None:
        return dict(split.image_features)
    assert split.image_paths is not None, "a split has either image paths or image features"
    starts = range(0, len(split.image_paths), shard_size)
    shards = []
    with own_random_numbers():
        for start in each_shard(f"{split.dataset}:{split.split} image features", starts):
            paths = split.image_paths[start : start + shard_size]
            parts = {"backbone": backbone.fingerprint, "images": file_digest(paths)}
            shards.append(cache.get_or_compute(parts, lambda paths=paths: backbone.encode_images(paths)))
    return concatenated(shards)


class CachedTextBackbone:
    """A frozen text backbone behind the feature cache (`harness.interfaces.TextFeatureSource`).

    The backbone object is built on first use only, so methods that never read frozen text
    features never load the text model.
    """

    def __init__(self, build_backbone: Callable[[], Any], cache: FeatureCache, shard_size: int = SHARD_CAPTIONS) -> None:
        self._build_backbone = build_backbone
        self.shard_size = shard_size
        self._backbone: Any = None
        self.cache = cache
        self._transient = False

    @contextmanager
    def uncached(self) -> Iterator[None]:
        """Encode without storing: for captions generated once per batch (AsCL's T⁺), which
        would otherwise fill the disk with entries nobody reads again."""
        self._transient = True
        try:
            yield
        finally:
            self._transient = False

    @property
    def backbone(self) -> Any:
        if self._backbone is None:
            self._backbone = self._build_backbone()
        return self._backbone

    def encode_texts(self, texts: Sequence[str]) -> Mapping[str, np.ndarray | ShardedArray]:
        """Frozen features of `texts`, cached in shards of `shard_size` texts (memory-mapped), so a
        split's first extraction holds one shard in memory, never the whole split, and resumes
        from the last finished shard when interrupted."""
        with own_random_numbers():
            if self._transient:
                return self.backbone.encode_texts(list(texts))
            starts = range(0, max(len(texts), 1), self.shard_size)
            shards = []
            for start in each_shard("text features", starts):
                shard = list(texts[start : start + self.shard_size])
                digest = hashlib.sha256("\0".join(shard).encode("utf-8")).hexdigest()
                parts = {"backbone": self.backbone.fingerprint, "texts": digest, "count": len(shard)}
                shards.append(self.cache.get_or_compute(parts, lambda shard=shard: self.backbone.encode_texts(shard)))
            return concatenated(shards)


def extract_dataset_features(
    registry: Any, dataset_name: str, options: Mapping[str, Any], splits: Sequence[str], image_backbone: str, text_backbone: str, *, text: bool, cache: FeatureCache
) -> list[tuple[str, int, int, dict[str, tuple[int, ...]]]]:
    """Compute and cache the frozen features of a dataset's splits (all of them by default),
    resuming where an earlier extraction stopped; (split, images, captions, shape per feature)
    for each split."""
    dataset = registry.get("dataset", dataset_name).build(dict(options), f"itr features {dataset_name}")
    image_model = registry.get("image-backbone", image_backbone).build({}, f"--image-backbone {image_backbone}")
    frozen_text = CachedTextBackbone(lambda: registry.get("text-backbone", text_backbone).build({}, f"--text-backbone {text_backbone}"), cache)
    extracted = []
    for split_name in splits or dataset.splits():
        split = dataset.load(split_name)
        arrays = dict(split_image_features(split, image_model, cache))
        if text:
            arrays.update({f"text.{name}": value for name, value in frozen_text.encode_texts(list(split.captions)).items()})
        extracted.append((split_name, split.n_images, split.n_captions, {name: tuple(value.shape[1:]) for name, value in arrays.items()}))
    return extracted

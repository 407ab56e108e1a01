"""A job's data: its frozen backbones behind the feature cache, its build context, and the
inputs of its training and test splits.

Backbones are built on first use only: a job whose features are all cached never loads its
image or text model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from harness.capabilities import READS_PIXELS, claims
from harness.errors import UserError
from harness.features import CachedTextBackbone, FeatureCache, split_image_features
from harness.interfaces import BuildContext, RetrievalSplit
from harness.job.assemble import build_component, split_inputs
from harness.job.catalog import DataCatalog
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.config.experiment_file import DatasetEntry
    from harness.job.job import Job
    from harness.training.model import RetrievalModel, SplitInputs


class JobData:
    """The data side of one job (`job` on its dataset, through `catalog` and `cache`)."""

    def __init__(self, job: "Job", registry: Registry, catalog: DataCatalog, cache: FeatureCache) -> None:
        self.job, self.catalog, self.cache = job, catalog, cache
        backbones, where = job.config.backbones, f"methods.{job.label}.backbones"
        self.image_backbone = _Lazy(lambda: build_component(registry, "image-backbone", backbones.image, f"{where}.image"))
        self.frozen_text = CachedTextBackbone(lambda: build_component(registry, "text-backbone", backbones.text, f"{where}.text"), cache)

    def context(self) -> BuildContext:
        """What the job's factories may know of the data: the image features of its test split
        (their shapes; extracted only if a factory reads them, which an encoder of pixels does
        not) and the captions of its training split (vocabularies), so a rebuilt job has the
        same parameters."""
        entry = self.job.dataset
        return BuildContext(
            image_feature_shapes=_FeatureShapes(lambda: self.image_features(self.catalog.split(entry, entry.test))),
            train_captions=self.catalog.split(entry, entry.train).captions if self.job.trains else (),
            frozen_text=self.frozen_text,
            seed=self.job.seed,
        )

    def image_features(self, split: RetrievalSplit) -> Any:
        return split_image_features(split, self.image_backbone, self.cache)

    def images(self, model: "RetrievalModel", split: RetrievalSplit, workers: int) -> Any:
        """What `model`'s image encoder reads of `split`: decoded pixels (`PixelFeed`, in
        `workers` loader processes) or the frozen backbone's cached features."""
        encoder = model.image_encoder
        if not claims(encoder, READS_PIXELS):
            return self.image_features(split)
        from harness.training.feeds import PixelFeed

        if split.image_paths is None:
            raise UserError(
                f"methods.{self.job.label}.image_encoder: {self.job.config.image_encoder.name} reads pixels, but split "
                f"'{split.split}' of dataset '{split.dataset}' has precomputed features only; use a dataset of image files"
            )
        return PixelFeed(split.image_paths, encoder.pixels, seed=self.job.seed, workers=workers)

    def training_inputs(self, model: "RetrievalModel") -> "SplitInputs":
        """The training split as `model` reads it, with every text source of the job."""
        entry = self.job.dataset
        split = self.catalog.split(entry, entry.train)
        texts = {name: self.catalog.image_texts(entry, name, ref, self.job.label) for name, ref in self.job.config.texts.items()}
        images = self.images(model, split, self.job.config.train.loader_workers)
        return split_inputs(model, images, split.captions, split.image_of_caption, texts)

    def test_inputs(self, model: "RetrievalModel", entry: "DatasetEntry | None" = None) -> tuple[RetrievalSplit, "SplitInputs"]:
        """(the test split of `entry`, default the job's, and its inputs as `model` reads them)."""
        entry = entry or self.job.dataset
        split = self.catalog.split(entry, entry.test)
        images = self.images(model, split, self.job.config.eval.loader_workers)
        return split, split_inputs(model, images, split.captions, split.image_of_caption)


class _FeatureShapes(Mapping):
    """Per-item shapes of the image features on offer, read on first access: building an
    encoder of pixels never runs the frozen image backbone."""

    def __init__(self, features: Callable[[], Mapping[str, Any]]) -> None:
        self._features = features
        self._shapes: dict[str, tuple[int, ...]] | None = None

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        if self._shapes is None:
            self._shapes = {name: tuple(array.shape[1:]) for name, array in self._features().items()}
        return self._shapes

    def __getitem__(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


class _Lazy:
    """Builds a backbone on first attribute access: cached features never load the model."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._target: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._target is None:
            self._target = self._build()
        return getattr(self._target, name)

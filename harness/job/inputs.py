"""A job's data: its frozen backbones behind the feature cache, its build context, and the
inputs of its training and test splits.

Backbones are built on first use only: a job whose features are all cached never loads its
image or text model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

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
        (their shapes) and the captions of its training split (vocabularies), so a rebuilt job
        has the same parameters."""
        entry = self.job.dataset
        test_features = self.image_features(self.catalog.split(entry, entry.test))
        return BuildContext(
            image_feature_shapes={name: tuple(array.shape[1:]) for name, array in test_features.items()},
            train_captions=self.catalog.split(entry, entry.train).captions if self.job.trains else (),
            frozen_text=self.frozen_text,
            seed=self.job.seed,
        )

    def image_features(self, split: RetrievalSplit) -> Any:
        return split_image_features(split, self.image_backbone, self.cache)

    def training_inputs(self, model: "RetrievalModel") -> "SplitInputs":
        """The training split as `model` reads it, with every text source of the job."""
        entry = self.job.dataset
        split = self.catalog.split(entry, entry.train)
        texts = {name: self.catalog.image_texts(entry, name, ref, self.job.label) for name, ref in self.job.config.texts.items()}
        return split_inputs(model, self.image_features(split), split.captions, split.image_of_caption, texts)

    def test_inputs(self, model: "RetrievalModel", entry: "DatasetEntry | None" = None) -> tuple[RetrievalSplit, "SplitInputs"]:
        """(the test split of `entry`, default the job's, and its inputs as `model` reads them)."""
        entry = entry or self.job.dataset
        split = self.catalog.split(entry, entry.test)
        return split, split_inputs(model, self.image_features(split), split.captions, split.image_of_caption)


class _Lazy:
    """Builds a backbone on first attribute access: cached features never load the model."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._target: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._target is None:
            self._target = self._build()
        return getattr(self._target, name)

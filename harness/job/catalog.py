"""Datasets, their splits and their text sources, each loaded and validated once per process.

The driver's `preflight` loads everything the planned jobs need and checks image files and
protocols before the first job starts, so bad data stops a run before anything is written;
jobs and worker processes then read the splits it already checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from harness.config.experiment_file import DatasetEntry
from harness.config.job_config import ComponentRef
from harness.errors import UserError
from harness.image_files import check_image_files
from harness.interfaces import EvaluationProtocol, RetrievalSplit, SourcedDataset
from harness.registry import Registry


def protocols_of(registry: Registry, entry: DatasetEntry, where: str) -> dict[str, EvaluationProtocol]:
    """The dataset entry's protocols, built through the registry, by name."""
    built = {}
    for index, name in enumerate(entry.protocols):
        try:
            built[name] = registry.get("protocol", name).build({}, f"{where}.protocols.{index}")
        except UserError as exc:
            raise UserError(f"{where}.protocols.{index}: {exc}") from None
    return built


@dataclass
class DataCatalog:
    """Datasets and their splits, each loaded (and validated) once per experiment run.

    Attributes:
        registry: where datasets and text sources are found.
        source: the experiment file (or command) the entries come from, for messages.
    """

    registry: Registry
    source: str
    _datasets: dict[tuple[str, str], Any] = field(default_factory=dict)
    _splits: dict[tuple[str, str, str], RetrievalSplit] = field(default_factory=dict)
    _texts: dict[tuple[str, ...], list[str]] = field(default_factory=dict)

    def dataset(self, entry: DatasetEntry) -> Any:
        """The entry's dataset (`harness.interfaces.Dataset`), built once."""
        key = (entry.name, _canonical(entry.options))
        if key not in self._datasets:
            self._datasets[key] = self.registry.get("dataset", entry.name).build(entry.options, f"{self.source}: datasets.{entry.name}")
        return self._datasets[key]

    def split(self, entry: DatasetEntry, split: str) -> RetrievalSplit:
        key = (entry.name, _canonical(entry.options), split)
        if key not in self._splits:
            self._splits[key] = self.dataset(entry).load(split)
        return self._splits[key]

    def data_source(self, entry: DatasetEntry, split: str) -> str | None:
        """Where `split` of the entry lies, if its dataset says (`SourcedDataset`)."""
        dataset = self.dataset(entry)
        return dataset.source(split) if isinstance(dataset, SourcedDataset) else None

    def image_texts(self, entry: DatasetEntry, name: str, source: ComponentRef, label: str) -> list[str]:
        """Text source `name` (`source`) of a job on `entry`'s training split: one text per
        image, read and checked once per run (`harness.interfaces.TextSource`)."""
        key = (entry.name, _canonical(entry.options), entry.train, _canonical(source.model_dump()))
        if key not in self._texts:
            where = f"{self.source}: methods.{label}.texts.{name}"
            split = self.split(entry, entry.train)
            texts = list(self.registry.get("text-source", source.name).build(source.options, where).image_texts(split))
            if len(texts) != split.n_images:
                raise UserError(f"{where}: {len(texts)} texts for the {split.n_images} images of split '{entry.train}'")
            self._texts[key] = texts
        return self._texts[key]

    def preflight(self, jobs: list[Any]) -> None:
        """Load every split (and text source) any job needs, check its image files once, and
        check it against the job's protocols, so malformed data stops the run before it starts.
        Only the driver runs this; worker processes load the splits it already checked."""
        checked: set[int] = set()
        for job in jobs:
            entry = job.dataset
            test_split = self.split(entry, entry.test)
            needed = {entry.test: test_split}
            if job.trains:
                needed[entry.train] = self.split(entry, entry.train)
                for name, source in job.config.texts.items():
                    self.image_texts(entry, name, source, job.label)
            for split_name, split in needed.items():
                if split.image_paths is not None and id(split) not in checked:
                    check_image_files(split.image_paths, f"{entry.title}:{split_name}")
                    checked.add(id(split))
            for protocol in protocols_of(self.registry, entry, f"{self.source}: datasets.{entry.name}").values():
                protocol.check(test_split)


def _canonical(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)

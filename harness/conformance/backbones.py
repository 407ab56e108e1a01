"""Checks of frozen backbones (`harness.interfaces.ImageBackbone`, `TextBackbone`).

Backbone features are cached on disk by content hash and extracted in shards, so an item's
features must not depend on the other items of a call, and the same input must give the same
features. A frozen model has no seed to vary and loading pretrained weights is the slow part, so
a backbone is built once per process, and a backbone already checked with the same options (by
another method's check in the same process) reports its earlier results.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.conformance.compare import require_close
from harness.conformance.report import CheckFailed, CheckResult
from harness.conformance.subject import ComponentChecks

_BUILT: dict[tuple[str, str], Any] = {}
_CHECKED: dict[tuple[str, str], list[CheckResult]] = {}
ORDER = [2, 0, 1]


class BackboneChecks(ComponentChecks):
    """interface, batch order and composition, determinism."""

    CHECKS = (
        ("interface", "interface"),
        ("leakage/batch-order", "batch_order"),
        ("leakage/batch-composition", "batch_composition"),
        ("determinism", "determinism"),
    )

    def __init__(self, subject: Any) -> None:
        super().__init__(subject)
        self.key = (subject.title, json.dumps(dict(subject.options), sort_keys=True, default=str))
        self._full: dict[str, np.ndarray] | None = None

    @property
    def primary(self) -> Any:
        if self.key not in _BUILT:
            _BUILT[self.key] = self.subject.build()
        return _BUILT[self.key]

    def run(self) -> list[CheckResult]:
        if self.key not in _CHECKED:
            _CHECKED[self.key] = super().run()
        return list(_CHECKED[self.key])

    @property
    def full(self) -> dict[str, np.ndarray]:
        """Features of the three synthetic items, computed once (the interface check)."""
        if self._full is None:
            self._full = self.encode([0, 1, 2])
        return self._full

    @property
    def is_image(self) -> bool:
        return self.subject.spec.kind == "image-backbone"

    def encode(self, rows: list[int]) -> dict[str, np.ndarray]:
        """Features of synthetic items `rows` (three noise images of different sizes, or three captions)."""
        if self.is_image:
            with tempfile.TemporaryDirectory() as folder:
                paths = self.subject.data.image_files(Path(folder), 3)
                return self.primary.encode_images([paths[row] for row in rows])
        captions = ["a dog.", "two people ride bicycles down a busy city street at night", "a red bus"]
        return self.primary.encode_texts([captions[row] for row in rows])

    def interface(self) -> str:
        backbone = self.primary
        fingerprint, outputs = getattr(backbone, "fingerprint", None), getattr(backbone, "outputs", None)
        if not isinstance(fingerprint, str) or not fingerprint:
            raise CheckFailed("a backbone needs a non-empty string `fingerprint` (part of the feature-cache key)")
        if not outputs or not all(isinstance(name, str) for name in outputs):
            raise CheckFailed("a backbone needs `outputs`, the names of the features it produces")
        method = "encode_images" if self.is_image else "encode_texts"
        if not callable(getattr(backbone, method, None)):
            raise CheckFailed(f"a {self.subject.spec.kind} needs {method}(...) -> {{name: array [N, ...]}}")
        features = self.full
        if set(features) != set(outputs):
            raise CheckFailed(f"{method} returned {sorted(features)}, its `outputs` say {sorted(outputs)}")
        for name, array in features.items():
            array = np.asarray(array)
            if array.ndim == 0 or len(array) != 3:
                raise CheckFailed(f"'{name}' must have one row per item (3), got shape {list(array.shape)}")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise CheckFailed(f"'{name}' has NaN or infinite values")
        shapes = ", ".join(f"{name} {list(np.asarray(a).shape[1:])}" for name, a in features.items())
        return f"3 items -> {shapes}"

    def batch_order(self) -> str:
        self._require_rows(self.encode(ORDER), self.full, ORDER, "after reordering the items")
        return "reordering the items reorders the features"

    def batch_composition(self) -> str:
        self._require_rows(self.encode([1]), self.full, [1], "of item 1 encoded alone")
        return "an item encoded alone has the features it has in a batch"

    def determinism(self) -> str:
        self._require_rows(self.encode([0, 1, 2]), self.full, [0, 1, 2], "of a second call")
        return "the same items give the same features"

    def _require_rows(self, actual: dict, full: dict, rows: list[int], what: str) -> None:
        """actual[name][k] == full[name][rows[k]] for every output; variable-length outputs
        (tokens padded to the longest item of a call) are compared on their real positions."""
        lengths = np.asarray(actual["lengths"]) if "lengths" in actual else None
        for name, array in full.items():
            expected, got = np.asarray(array)[rows], np.asarray(actual[name])
            if got.shape[2:] != expected.shape[2:] or len(got) != len(expected):
                raise CheckFailed(f"features '{name}' {what}: shape {list(got.shape)}, expected {list(expected.shape)}")
            if got.ndim >= 2 and got.shape[1] != expected.shape[1]:
                if lengths is None:
                    raise CheckFailed(f"features '{name}' {what}: shape {list(got.shape)}, expected {list(expected.shape)}")
                width = int(lengths.max())
                got, expected = got[:, :width], expected[:, :width]
                if expected.shape[1] < width:
                    raise CheckFailed(f"features '{name}' {what}: padded to {expected.shape[1]} < longest item {width}")
            if lengths is not None and got.ndim >= 3 and name != "lengths":
                mask = np.arange(got.shape[1])[None, :] < lengths[:, None]
                got, expected = got * mask[..., None], expected * mask[..., None]
            require_close(torch.as_tensor(got), torch.as_tensor(expected), f"features '{name}' {what}")

"""The schema of an experiment file: datasets, methods with overrides, seeds, tracking.

An experiment file is data (TOML, never evaluated). Each (method cell, dataset, seed) becomes a
job (`harness.experiment.plan`); what a method block may override is `JobConfig`
(`harness.config.job_config`). Every problem is reported as one line naming the file and the
dotted key.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from harness.config.job_config import Strict
from harness.errors import UserError, closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class DatasetEntry(Strict):
    """A dataset of the experiment, the splits to train and test on, and the protocols.

    `name` is a registered dataset (``coco-demo``) or format (``precomp``, ``karpathy``) and
    `options` go to its factory; `protocols` are registered evaluation protocols (checked
    against the registry when the file is planned); `label` is how results name it (default: the ``name`` option of
    a format, else `name`), so two ``precomp`` datasets can sit side by side on one leaderboard.
    """

    name: str
    label: str | None = None
    train: str = "train"
    test: str = "test"
    protocols: list[str] = Field(default_factory=lambda: ["full"], min_length=1)
    options: dict[str, Any] = {}

    @property
    def title(self) -> str:
        return self.label or str(self.options.get("name") or self.name)


class ExperimentFile(Strict):
    """The top level of an experiment TOML file."""

    name: str = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    datasets: list[DatasetEntry] = Field(min_length=1)
    methods: dict[str, dict[str, Any]] = Field(min_length=1)
    tracking_uri: str | None = None


def format_validation_error(where: str, exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line for the first error: ``file: dotted.key: what was expected (got value)``.

    An unknown key names the closest allowed one and lists them all, when `model` (the model that
    was validated) is given.
    """
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden" and model is not None:
        allowed = _keys_at(model, err["loc"][:-1])
        name = str(err["loc"][-1])
        if allowed:
            return f"{where}: {key}: unknown key '{name}'{closest(name, allowed)}; allowed here: {', '.join(allowed)}"
    shown = "input" in err and err["type"] != "missing" and not isinstance(err["input"], dict)  # not a whole table
    got = f" (got {err['input']!r})" if shown else ""
    message = err["msg"][0].lower() + err["msg"][1:]
    return f"{where}: {key}: {message}{got}" if key else f"{where}: {message}"


def _keys_at(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names of the model found at `path` inside `model` (dict keys and list indices
    step into the value type), or [] where the path leads to no model."""

    def unwrap(annotation: Any) -> Any:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) and args:
            return args[0]
        return annotation

    annotation: Any = model
    for part in path:
        annotation = unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field is not None else None
        else:
            args = typing.get_args(annotation)
            annotation = args[-1] if args else None
    annotation = unwrap(annotation)
    return list(annotation.model_fields) if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []


def load_experiment_file(path: Path) -> ExperimentFile:
    """Parse and type-check an experiment file; every problem becomes a one-line UserError."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such experiment file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    try:
        return ExperimentFile.model_validate(raw)
    except ValidationError as exc:
        raise UserError(format_validation_error(str(path), exc, ExperimentFile)) from None

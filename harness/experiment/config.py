"""Typed models of an experiment file and of one job's resolved configuration.

An experiment file is data (TOML, never evaluated). It names datasets, methods with overrides,
and seeds; each (method, dataset, seed) becomes a job whose configuration is the method recipe's
defaults with the file's overrides merged in. Defaults live in exactly one place each: training
knobs in `TrainConfig`, component options in the component factory's signature.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, field_validator, model_validator

from pydantic_core import PydanticCustomError

from harness.errors import UserError
from harness.registry import closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentRef(BaseModel):
    """A component by name plus its options, e.g. ``{name = "vse-gru", embed_dim = 512}``."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TrainConfig(_Strict):
    """Optimisation settings shared by all stages (a stage may override `lr`)."""

    batch_size: PositiveInt = 128
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: PositiveFloat = 2e-4
    weight_decay: float = Field(0.0, ge=0.0)
    lr_schedule: Literal["step", "multistep", "cosine"] = "step"
    lr_decay_every: PositiveInt | None = Field(15, description="step: multiply lr by lr_decay every N epochs")
    lr_milestones: list[PositiveInt] = Field([], description="multistep: multiply lr by lr_decay at each of these epochs")
    lr_decay: float = Field(0.1, gt=0.0, le=1.0)
    lr_min: float = Field(0.0, ge=0.0, description="cosine: the lr reached at the end of the stage")
    grad_clip: PositiveFloat | None = 2.0
    device: str = "auto"
    amp: bool = True
    eval_batch_size: PositiveInt = 256
    score_chunk: PositiveInt = 1024

    @model_validator(mode="after")
    def _milestones_for_multistep(self) -> "TrainConfig":
        if self.lr_schedule == "multistep" and not self.lr_milestones:
            raise PydanticCustomError("milestones", "lr_schedule 'multistep' needs lr_milestones, a non-empty list of epochs")
        return self


CAPTIONS = "captions"
"""The text a stage trains on unless it names one of the job's text sources."""


class StageConfig(_Strict):
    """One training stage: its own loss, epochs, learning rate and text; weights carry over.

    ``restart = false`` continues the previous stage's optimizer and lr schedule (a loss warm-up);
    the default starts both afresh (a new training phase). ``text`` is what the stage pairs with
    the images: the split's captions (one item per caption, the default) or the name of one of
    the job's text sources (`JobConfig.texts`; one item per image), e.g. D2S-VSE's stage 1 on
    dense descriptions.
    """

    epochs: int = Field(ge=0)
    loss: ComponentRef
    lr: PositiveFloat | None = None
    restart: bool = True
    text: str = Field(CAPTIONS, min_length=1)


class GeneratorsConfig(_Strict):
    """Generated training samples (AsCL §2): text-level positives T⁺ and feature-level negatives.

    With positives, a step has two passes and L = (1 − w)·L(I, T) + w·L(I, T⁺) with
    w = `positive_weight` (the AsCL paper: 0.5; its public code: 0.6). Negatives add one generated
    caption per caption as extra score columns in every pass. `*_mix` says whether one strategy is
    drawn for the whole batch or one per caption (the code: per caption for positives, per batch
    for negatives).
    """

    positives: list[ComponentRef] = []
    negatives: list[ComponentRef] = []
    positive_weight: float = Field(0.5, ge=0.0, le=1.0)
    positive_mix: Literal["per-caption", "per-batch"] = "per-caption"
    negative_mix: Literal["per-caption", "per-batch"] = "per-batch"


class BackbonesConfig(_Strict):
    """Frozen backbones that turn raw images and captions into cached features."""

    image: ComponentRef = ComponentRef(name="efficientnet-lite0")
    text: ComponentRef = ComponentRef(name="minilm")


class JobConfig(_Strict):
    """Everything that determines one job's result, apart from dataset and seed."""

    image_encoder: ComponentRef
    text_encoder: ComponentRef
    similarity_head: ComponentRef = ComponentRef(name="cosine")
    backbones: BackbonesConfig = BackbonesConfig()
    train: TrainConfig = TrainConfig()
    stages: dict[str, StageConfig] = {}
    generators: GeneratorsConfig = GeneratorsConfig()
    texts: dict[str, ComponentRef] = {}

    @model_validator(mode="after")
    def _stage_texts_exist(self) -> "JobConfig":
        """`texts` are extra training texts per image (``text-source`` components) by name; a
        stage's ``text`` must be ``captions`` or one of them. Generated positives rewrite
        captions, so they need a stage on captions."""
        def error(message: str) -> PydanticCustomError:
            return PydanticCustomError("text_source", message.replace("{", "{{").replace("}", "}}"))

        if CAPTIONS in self.texts:
            raise error(f"texts.{CAPTIONS}: the name '{CAPTIONS}' is taken by the split's captions")
        known = [CAPTIONS, *self.texts]
        for name, stage in self.stages.items():
            if stage.text not in known:
                raise error(f"stages.{name}.text: no text source '{stage.text}'{closest(stage.text, known)}; known: {', '.join(known)}")
            if stage.text != CAPTIONS and self.generators.positives:
                raise error(f"stages.{name}.text: generated positives rewrite captions; a stage on '{stage.text}' cannot use them")
        return self


class DatasetEntry(_Strict):
    """A dataset of the experiment, the splits to train and test on, and the protocols.

    `name` is a registered dataset (``coco-demo``) or format (``precomp``, ``karpathy``) and
    `options` go to its factory; `label` is how results name it (default: the ``name`` option of
    a format, else `name`), so two ``precomp`` datasets can sit side by side on one leaderboard.
    """

    name: str
    label: str | None = None
    train: str = "train"
    test: str = "test"
    protocols: list[str] = Field(default_factory=lambda: ["full"], min_length=1)
    options: dict[str, Any] = {}

    @field_validator("protocols")
    @classmethod
    def _known_protocols(cls, protocols: list[str]) -> list[str]:
        from harness.protocols import PROTOCOLS

        for protocol in protocols:
            if protocol not in PROTOCOLS:
                raise ValueError(f"unknown protocol '{protocol}'{closest(protocol, PROTOCOLS)}; known: {', '.join(PROTOCOLS)}")
        return protocols

    @property
    def title(self) -> str:
        return self.label or str(self.options.get("name") or self.name)


class ExperimentFile(_Strict):
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

"""The sections of one job's configuration: what determines its result, apart from data and seed.

A job's configuration is a method recipe's defaults with the experiment file's overrides merged
in; `harness.job.resolve` then fills every component reference with the component's own
defaults, so one `JobConfig` says exactly what ran. Defaults live in one place each: training
knobs in `TrainConfig`, evaluation knobs in `EvalConfig`, component options in the component
factory's signature.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.config.roles import BACKBONE_ROLES, MODEL_ROLES
from harness.errors import closest


class Strict(BaseModel):
    """A section whose unknown keys are errors (named, with the closest allowed key)."""

    model_config = ConfigDict(extra="forbid")


class ComponentRef(BaseModel):
    """A component by name plus its options, e.g. ``{name = "vse-gru", embed_dim = 512}``.

    In a resolved job every option the factory takes is present, defaults included.
    """

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


LOADER_WORKERS: Any = Field(4, ge=0, description="processes decoding images for an image encoder that reads pixels (0: the job's own; at most the usable cores)")


class TrainConfig(Strict):
    """Optimisation settings shared by all stages (a stage may override `lr`), and where training runs."""

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
    steps_per_epoch: PositiveInt | None = Field(None, description="at most this many batches per epoch, e.g. a quick check on a large split; None: the whole split")
    device: str = Field("auto", description="auto: CUDA, then Apple MPS, then the CPU")
    amp: bool = Field(True, description="mixed precision when training on CUDA (amp_dtype)")
    amp_dtype: Literal["float16", "bfloat16"] = Field("float16", description="amp: float16 with loss scaling, or bfloat16 (no scaling needed)")
    loader_workers: int = LOADER_WORKERS
    processes: PositiveInt = Field(1, description="data-parallel processes training the job, one per GPU on CUDA; batch_size is the global batch")
    resume_every: int = Field(0, ge=0, description="write a resume point every N steps (0: at the end of every epoch); not part of the config hash")

    @model_validator(mode="after")
    def _milestones_for_multistep(self) -> "TrainConfig":
        if self.lr_schedule == "multistep" and not self.lr_milestones:
            raise PydanticCustomError("milestones", "lr_schedule 'multistep' needs lr_milestones, a non-empty list of epochs")
        return self

    @model_validator(mode="after")
    def _batch_splits_over_processes(self) -> "TrainConfig":
        if self.batch_size % self.processes:
            raise PydanticCustomError("processes", f"batch_size {self.batch_size} does not split over {self.processes} processes; use a multiple")
        return self


class EvalConfig(Strict):
    """How a job's test split is scored: where, in which precision, in blocks of what size, and
    by which strategy (`harness.evaluation.strategies`).

    ``mode = "full"`` scores every (image, caption) pair through the head, block by block:
    `score_chunk` images × `score_chunk` captions at a time, so the head's working memory is
    bounded whatever the split's size; it halves when a block runs out of memory, or until a
    block fits `memory_budget_mb` (`harness.evaluation.memory`). ``mode = "rerank"`` scores only each query's top
    `rerank_k` candidates by a cheap global prefilter (ALBEF and BLIP: k = 256 on COCO, 128 on
    Flickr30K): the method's own global embeddings (``prefilter = "self"``) or those of another
    method of the experiment (its label), whose finished run on the same test split is reused.
    The prefilter's exact top k runs on the evaluation device with torch, or with
    ``prefilter_search = "faiss"`` on the host through faiss's exact inner-product index (the
    ``faiss`` extra), for galleries too large for the device's memory.
    """

    device: str = Field("auto", description="auto: CUDA, then Apple MPS, then the CPU")
    amp: bool = Field(False, description="encode and score under bfloat16 autocast on CUDA (scores are kept as float32)")
    batch_size: PositiveInt = Field(256, description="images or captions encoded at once")
    loader_workers: int = LOADER_WORKERS
    score_chunk: PositiveInt = Field(1024, description="images and captions per block of the score matrix (halved on out of memory)")
    memory_budget_mb: PositiveFloat | None = Field(None, description="at most this much working memory a scoring block (MB, fitted on probe blocks); none: unlimited")
    mode: Literal["full", "rerank"] = "full"
    rerank_k: PositiveInt = Field(128, description="rerank: candidates per query scored by the head")
    prefilter: str = Field("self", min_length=1, description="rerank: 'self' or the label of another method of the experiment")
    prefilter_search: Literal["torch", "faiss"] = Field("torch", description="rerank: where the prefilter's exact top k is computed")
    rankings_top_k: int = Field(100, ge=0, description="candidates per query kept in the run's rankings artifact (itr export-rankings); 0: none; not part of the config hash")

    @field_validator("prefilter_search")
    @classmethod
    def _faiss_installed(cls, search: str) -> str:
        if search == "faiss" and importlib.util.find_spec("faiss") is None:
            raise PydanticCustomError("missing_extra", "'faiss' needs the faiss extra: pip install 'itr-harness[faiss]'")
        return search

    @property
    def borrows_prefilter(self) -> bool:
        """Whether a re-rank takes its candidates from another method's finished run."""
        return self.mode == "rerank" and self.prefilter != "self"


CAPTIONS = "captions"
"""The text a stage trains on unless it names one of the job's text sources."""


class StageConfig(Strict):
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


class GeneratorsConfig(Strict):
    """Generated training samples (AsCL): text-level positives T⁺ and feature-level negatives.

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

    @property
    def any(self) -> bool:
        return bool(self.positives or self.negatives)


class BackbonesConfig(Strict):
    """Frozen backbones that turn raw images and captions into cached features."""

    image: ComponentRef = ComponentRef(name="efficientnet-lite0")
    text: ComponentRef = ComponentRef(name="minilm")


class JobConfig(Strict):
    """Everything that determines one job's result, apart from dataset and seed."""

    image_encoder: ComponentRef
    text_encoder: ComponentRef
    similarity_head: ComponentRef = ComponentRef(name="cosine")
    backbones: BackbonesConfig = BackbonesConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
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

    def component_refs(self) -> list[tuple[str, str, ComponentRef]]:
        """(dotted role, kind, reference) of every component the job names, in build order."""
        refs = [(role, kind, getattr(self, role)) for role, kind in MODEL_ROLES.items()]
        refs += [(f"backbones.{role}", kind, getattr(self.backbones, role)) for role, kind in BACKBONE_ROLES.items()]
        refs += [(f"stages.{name}.loss", "loss", stage.loss) for name, stage in self.stages.items()]
        for group in ("positives", "negatives"):
            refs += [(f"generators.{group}.{index}", "sample-generator", ref) for index, ref in enumerate(getattr(self.generators, group))]
        refs += [(f"texts.{name}", "text-source", ref) for name, ref in self.texts.items()]
        return refs

"""Optional capabilities: what a component may do beyond its interface, declared and checked.

Most components need only their interface (`harness.interfaces`). A few need more of the
harness: a loss that reads the whole training step, a loss told when its stage begins, a head
that reads the pairing labels (to reproduce public code that leaks them), a text encoder that
prepares each text source its own way, a module trained at its own learning-rate scale. Each is a
small typed protocol below. A component claims one by its marker attribute; when the job is
built, `check_capabilities` refuses, in one line, a component that claims a capability and does
not implement it, instead of letting the trainer fail (or silently skip it) hours later.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from harness.errors import UserError

if TYPE_CHECKING:
    import torch


@runtime_checkable
class ReadsBatch(Protocol):
    """A loss that needs more than its score matrix (``reads_batch = True``): the trainer calls
    ``forward(scores, image_ids, batch=...)`` with a `harness.training.batch.TrainingBatch`."""

    reads_batch: bool

    def forward(self, scores: "torch.Tensor", image_ids: "torch.Tensor", *, batch: Any) -> "torch.Tensor": ...


@runtime_checkable
class StageHook(Protocol):
    """A loss told when its stage starts, with the model as the previous stage left it (e.g. to
    copy a frozen teacher from it)."""

    def begin_stage(self, model: Any) -> None: ...


@runtime_checkable
class ReportsTerms(Protocol):
    """A loss whose parts are worth logging: ``terms`` {name: float}, refreshed on every call;
    the trainer logs each term's epoch mean beside the loss."""

    terms: Mapping[str, float]


@runtime_checkable
class ReadsPairingLabels(Protocol):
    """A head that scores a whole split at once from the ground-truth pairing
    (``reads_pairing_labels = True``): it leaks, and exists only to reproduce public code that
    does; evaluation warns and the conformance checks flag it."""

    reads_pairing_labels: bool

    def score_with_pairing(self, images: Any, texts: Any, image_of_caption: "torch.Tensor") -> "torch.Tensor": ...


@runtime_checkable
class ScoresPairs(Protocol):
    """A head that scores an explicit list of pairs without the dense block (re-rank evaluation,
    ``eval.mode = "rerank"``): ``score_pairs(images, texts, image_index, caption_index)`` ->
    float [P], entry p = s(images[image_index[p]], texts[caption_index[p]]), equal to that entry
    of ``forward(images, texts)``. Cross-attention heads implement it batched; a head without it
    is re-ranked through `forward` on each query's candidates."""

    def score_pairs(self, images: Any, texts: Any, image_index: "torch.Tensor", caption_index: "torch.Tensor") -> "torch.Tensor": ...


@runtime_checkable
class ReadsTextSource(Protocol):
    """A text encoder that prepares each text source its own way (``reads_text_source = True``):
    ``prepare(texts, source=...)`` is told ``"captions"`` or the source's name (D2S-VSE routes
    dense descriptions and sparse captions differently)."""

    reads_text_source: bool

    def prepare(self, texts: Sequence[str], *, source: str) -> Mapping[str, "torch.Tensor"]: ...


@runtime_checkable
class OwnLearningRate(Protocol):
    """A module trained at a fraction of the stage's learning rate (``lr_scale``, e.g. a
    fine-tuned BERT at 0.1 in VSE∞); the nearest declaring ancestor of a parameter wins."""

    lr_scale: float


@runtime_checkable
class ReadsPixels(Protocol):
    """An image encoder that reads images, not frozen features (``pixels``, a
    `harness.interfaces.PixelSpec`): the job decodes and augments its images on the fly and
    calls ``forward({"pixels": Tensor [B, 3, size, size]})``. Its backbone trains with it.
    Annotate ``pixels: PixelSpec`` in the class body too: `itr describe` then tells before
    building that the encoder reads pixels (the spec itself may depend on a checkpoint)."""

    pixels: Any


@dataclass(frozen=True)
class Capability:
    """How a component claims a capability, and what implementing it takes.

    Attributes:
        protocol: the typed protocol above.
        marker: the attribute whose truth claims it (None: having `method` claims it).
        method: the method it needs, or None for a plain attribute.
        keyword: a keyword `method` must accept.
        attribute_problem: for a plain attribute, why its value is unusable (or None).
    """

    protocol: type
    marker: str | None
    method: str | None = None
    keyword: str | None = None
    attribute_problem: Callable[[Any], str | None] | None = None

    def claimed_by(self, component: Any) -> bool:
        if self.marker is None:
            return getattr(component, self.method or "", None) is not None
        return bool(getattr(component, self.marker, False))

    def problem(self, component: Any) -> str | None:
        """Why `component` claims the capability but does not implement it, or None."""
        if self.method is None:
            return self.attribute_problem(getattr(component, self.marker or "")) if self.attribute_problem else None
        implementation = getattr(component, self.method, None)
        if not callable(implementation):
            return f"has no method {self.method}()"
        if self.keyword is None:
            return None
        try:
            parameters = inspect.signature(implementation).parameters
        except (TypeError, ValueError):  # a builtin: its keywords cannot be read, trust it
            return None
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        if self.keyword not in parameters and not takes_any:
            return f"its {self.method}() takes no keyword '{self.keyword}'"
        return None


def _pixel_spec_problem(spec: Any) -> str | None:
    from harness.interfaces import PixelSpec

    if not isinstance(spec, PixelSpec):
        return f"its pixels is a {type(spec).__name__}, not a harness.interfaces.PixelSpec"
    if spec.size < 1 or spec.crop not in ("resized", "sides") or not 0 < spec.scale[0] <= spec.scale[1] <= 1:
        return f"its pixels {spec} needs size ≥ 1, crop 'resized' or 'sides' and 0 < scale low ≤ high ≤ 1"
    return None


READS_PIXELS = Capability(ReadsPixels, "pixels", attribute_problem=_pixel_spec_problem)
READS_BATCH = Capability(ReadsBatch, "reads_batch", "forward", "batch")
STAGE_HOOK = Capability(StageHook, None, "begin_stage")
READS_PAIRING_LABELS = Capability(ReadsPairingLabels, "reads_pairing_labels", "score_with_pairing")
READS_TEXT_SOURCE = Capability(ReadsTextSource, "reads_text_source", "prepare", "source")
SCORES_PAIRS = Capability(ScoresPairs, None, "score_pairs")

CAPABILITIES = {
    "loss": (READS_BATCH, STAGE_HOOK),
    "similarity-head": (READS_PAIRING_LABELS, SCORES_PAIRS),
    "text-encoder": (READS_TEXT_SOURCE,),
    "image-encoder": (READS_PIXELS,),
}
"""The capabilities each kind may claim."""


def claims(component: Any, capability: Capability) -> bool:
    """Whether `component` claims `capability` (checked when its job was built)."""
    return capability.claimed_by(component)


def terms_of(loss: Any) -> Mapping[str, float]:
    """The loss's reported terms (`ReportsTerms`), or none."""
    return getattr(loss, "terms", None) or {}


def check_capabilities(component: Any, kind: str, where: str) -> None:
    """Refuse a component of `kind` that claims a capability it does not implement, and any
    module inside it whose ``lr_scale`` is not a finite number ≥ 0."""
    for capability in CAPABILITIES.get(kind, ()):
        if capability.claimed_by(component):
            problem = capability.problem(component)
            if problem is not None:
                claim = f"declares {capability.marker} = True" if capability.marker else f"has {capability.method}"
                raise UserError(
                    f"{where}: {type(component).__name__} {claim} ({capability.protocol.__name__}) but {problem}"
                )
    modules = component.named_modules() if hasattr(component, "named_modules") else [("", component)]
    for name, module in modules:
        if isinstance(module, OwnLearningRate):
            scale = module.lr_scale
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
                inner = f" (module '{name}')" if name else ""
                raise UserError(f"{where}{inner}: lr_scale must be a finite number ≥ 0 (OwnLearningRate), got {scale!r}")


HEAD_INPUTS: dict[str, str] = {
    "vectors": "global vectors: Tensor [n, D] for images and captions",
    "sets": "vector sets for images and captions (`harness.embeddings.VectorSets`: regions, words)",
    "sets+summary": "vector sets for images and captions, the images' with a global summary [n, D']",
}
"""The kinds of embeddings a similarity head may declare it scores (`DeclaresInputs`)."""


@runtime_checkable
class DeclaresInputs(Protocol):
    """A head that says which embeddings it scores: ``accepts = ("vectors", "sets")``, keys of
    `HEAD_INPUTS`. `itr check` runs the head's checks on each kind it declares (without the
    declaration, on the first kind it scores without raising) and `itr describe` shows them."""

    accepts: tuple[str, ...]


def declared_inputs(head: Any, where: str) -> tuple[str, ...] | None:
    """The input kinds a head (or its class) declares in ``accepts``, or None when it declares
    none; a declaration that names no kind of `HEAD_INPUTS` is a UserError naming `where`."""
    from harness.errors import closest

    declared = getattr(head, "accepts", None)
    if declared is None:
        return None
    if isinstance(declared, str) or not isinstance(declared, (tuple, list)) or not declared:
        raise UserError(f"{where}: accepts must be a non-empty tuple of input kinds, e.g. (\"vectors\", \"sets\"); got {declared!r}")
    for kind in declared:
        if kind not in HEAD_INPUTS:
            raise UserError(
                f"{where}: accepts names an unknown input kind {kind!r}{closest(str(kind), HEAD_INPUTS)}; kinds: {', '.join(HEAD_INPUTS)}"
            )
    return tuple(declared)

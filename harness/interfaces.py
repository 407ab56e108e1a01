"""The contracts between the harness and its plugins.

Every component a plugin registers satisfies one of the protocols below. The harness only ever
talks to these protocols, so a method written as a third-party package is a first-class citizen.
What a component may do beyond them (read the whole training batch, have its own learning-rate
scale, ...) is declared through the optional capabilities of `harness.capabilities`. Nothing here
imports torch at module level: `itr --help` and `itr plugins` must stay fast.

Data flow (docs/architecture.md)::

    Dataset.load(split) -> RetrievalSplit (captions, image files or precomputed features)
      -> ImageBackbone / TextBackbone: frozen features, cached on disk by content hash
         (or decoded, augmented pixels, for an image encoder that reads them: PixelSpec)
      -> ImageEncoder / TextEncoder (trainable) -> embeddings
      -> SimilarityHead -> scores [n_images, n_captions] -> Loss (training)
      -> evaluation strategy (``eval.mode``) -> EvaluationProtocol -> metrics

Embeddings are of two kinds. Global methods give a Tensor [B, D] per item. Local methods (SCAN,
AsCL) keep one vector per region or word, and sets differ in size, so they give a
`harness.embeddings.VectorSets`, never a bare [B, R, D] tensor:

- ``vectors``: [B, N_max, D], zero past each set's length;
- ``lengths``: int64 [B], the real vectors in each set (at least 1);
- ``summary``: optional [B, D'], a global vector travelling with each set (AsCL's CNN vector);
- ``mask()``: bool [B, N_max], True for real vectors; ``mean()``: [B, D], each set's mean.

The evaluator slices, concatenates and moves both kinds alike, so a head receives exactly what
its encoders produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import torch

FeatureDict = Mapping[str, np.ndarray]
"""Named per-item arrays whose first axis indexes images (or captions)."""


@dataclass(frozen=True)
class RetrievalSplit:
    """One split of a retrieval dataset: images, captions and which image each caption describes.

    Either `image_paths` (raw images, features come from an image backbone) or
    `image_features` (precomputed, e.g. the SCAN `precomp` layout) is set.

    Attributes:
        dataset: dataset name, e.g. ``coco-demo``.
        split: split name, e.g. ``train`` or ``test``.
        image_ids: one stable id per image (COCO id, file name, row number).
        captions: every caption, in dataset order.
        image_of_caption: int64 [n_captions], the image index each caption belongs to.
        image_paths: one file per image, or None.
        image_features: precomputed features, each [n_images, ...], or None.
        image_texts: extra texts carried beside the captions, by name, each one text per image
            in image order (e.g. ``{"dense": ...}``: a dense description of every image, what
            D2S-VSE trains on). Empty for most datasets; a text source (`TextSource`) reads it.
        caption_tags: per-caption labels by tag name, each one label per caption in caption order
            (e.g. ``{"source": ("web", "manual", ...)}``); results can be sliced by them.
        caption_ids: one stable id per caption, in caption order, where the dataset knows them
            (COCO caption annotation ids, matched from a ``captions_*.json`` file); None
            otherwise. Protocols with extended positives (ECCV Caption, CxC) need them.
    """

    dataset: str
    split: str
    image_ids: tuple[str, ...]
    captions: tuple[str, ...]
    image_of_caption: np.ndarray
    image_paths: tuple[Path, ...] | None = None
    image_features: FeatureDict | None = field(default=None, compare=False)
    image_texts: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    caption_tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    caption_ids: tuple[str, ...] | None = None

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_captions(self) -> int:
        return len(self.captions)


@runtime_checkable
class Dataset(Protocol):
    """A named source of retrieval splits (`register_datasets`)."""

    name: str

    def splits(self) -> Sequence[str]:
        """Names of the splits this dataset provides."""

    def load(self, split: str) -> RetrievalSplit:
        """Read one split, validated; raise `harness.errors.UserError` on malformed data."""


@runtime_checkable
class SourcedDataset(Protocol):
    """A dataset that also says where a split's data lies (optional): a local path, or a URL
    such as its Hub page. MLflow records it as the source of the job's run inputs."""

    def source(self, split: str) -> str:
        """A local path or a URL."""


@runtime_checkable
class ImageBackbone(Protocol):
    """A frozen image model that turns image files into named feature arrays.

    `fingerprint` changes whenever the outputs would change (weights, preprocessing, code
    version); it is part of the feature-cache key.
    """

    fingerprint: str
    outputs: tuple[str, ...]

    def encode_images(self, paths: Sequence[Path]) -> dict[str, np.ndarray]:
        """Features for each image, e.g. ``regions`` [N, R, D], ``pooled`` [N, D], ``logits`` [N, C]."""


@runtime_checkable
class TextBackbone(Protocol):
    """A frozen text model that turns captions into named feature arrays (see ImageBackbone)."""

    fingerprint: str
    outputs: tuple[str, ...]

    def encode_texts(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Features per text: ``tokens`` [M, L, D] zero-padded, ``lengths`` [M], ``sentence`` [M, D]."""


class TextFeatureSource(Protocol):
    """The frozen text backbone as components see it: cached, loaded only on first use.

    `encode_texts` gives one array per feature, first axis len(texts). For a split's captions
    they are memory-mapped cache shards behind a row-indexable view (``len``, ``shape``,
    ``dtype``, ``view[rows]`` for an index array or a slice): read the rows you need, never
    ``np.asarray`` the whole (COCO's training tokens are tens of GB).
    """

    def encode_texts(self, texts: Sequence[str]) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class BuildContext:
    """What a component factory may know about the data when it is built.

    Every registered factory is called as ``factory(ctx, **options)``; its keyword defaults
    are the component's defaults (one place), and the harness validates `options` against them.

    Attributes:
        image_feature_shapes: per-item shape of every image feature on offer,
            e.g. {"regions": (49, 1280), "pooled": (1280,), "logits": (1000,)}.
        train_captions: the training captions (vocabularies are built from these only).
        frozen_text: the job's frozen text backbone (e.g. MiniLM), cached on disk.
        seed: the job's seed, for components that draw random numbers at build time.
    """

    image_feature_shapes: Mapping[str, tuple[int, ...]]
    train_captions: Sequence[str]
    frozen_text: TextFeatureSource
    seed: int = 0


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PixelSpec:
    """How an image encoder that reads pixels wants its images (`harness.capabilities.ReadsPixels`).

    The harness decodes and augments every image on the fly, in `torch.utils.data.DataLoader`
    worker processes, and hands the encoder ``{"pixels": float32 [B, 3, size, size]}``, RGB
    scaled to [0, 1] then normalised by `mean` and `std`.

    Attributes:
        size: the square side the encoder reads.
        mean, std: per-channel normalisation of [0, 1] pixels (the model's own, e.g. ImageNet's).
        crop: the augmentation of training images and the resize of test images.
            ``"resized"``: a random crop of `scale` of the image's area and an aspect ratio in
            [3/4, 4/3], resized to size × size (torchvision's RandomResizedCrop); test images
            are resized on their short side and centre-cropped.
            ``"sides"``: a random crop of a fraction in `scale` of each side, resized to
            size × size without keeping the aspect ratio; test images are resized whole (the
            VSE∞ and D2S-VSE code, whose crop ratio is U[0.6, 1)).
            Both flip training images horizontally with probability 0.5.
        scale: the (low, high) range of the random crop, of the area or of each side.
    """

    size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop: str = "resized"
    scale: tuple[float, float] = (0.08, 1.0)


class ImageEncoder(Protocol):
    """Trainable map from images to embeddings (a torch.nn.Module).

    forward: features {name: Tensor [B, ...]}, every image feature on offer (frozen backbone
    features, cached), or ``{"pixels": Tensor [B, 3, S, S]}`` for an encoder that reads pixels
    (`harness.capabilities.ReadsPixels`: a fine-tuned backbone)
    -> Tensor [B, D] (a global embedding per image) or `harness.embeddings.VectorSets` (local:
    one vector per region, zero-padded ``vectors`` [B, R_max, D] with ``lengths`` [B] and an
    optional global ``summary`` [B, D'] travelling with them).
    """

    def forward(self, features: Mapping[str, "torch.Tensor"]) -> "torch.Tensor": ...


class TextEncoder(Protocol):
    """Trainable map from captions to embeddings (a torch.nn.Module).

    `prepare` runs once per split, outside the training loop (tokenisation, vocabulary lookup,
    frozen features); every tensor or array it returns has the caption axis first, so the trainer
    batches it by indexing. Frozen features are best returned as the cache hands them
    (memory-mapped numpy arrays): only each batch's rows are then read, and a job's memory does
    not grow with the split. forward: prepared inputs {name: Tensor [B, ...]} -> Tensor [B, D] or
    `harness.embeddings.VectorSets` (one vector per word: ``vectors`` [B, L_max, D] zero-padded,
    ``lengths`` [B]; see the module docstring).

    The encoder also prepares the texts of a job's text sources (`TextSource`, e.g. dense
    descriptions), alike unless it declares `harness.capabilities.ReadsTextSource`.
    """

    def prepare(self, captions: Sequence[str]) -> dict[str, "torch.Tensor"]: ...

    def forward(self, inputs: Mapping[str, "torch.Tensor"]) -> "torch.Tensor": ...


class SimilarityHead(Protocol):
    """Scores every image against every caption: [n_i, ...] x [n_c, ...] -> [n_i, n_c].

    Inputs are what the encoders produce: Tensors [n, D] or `harness.embeddings.VectorSets`
    (``vectors`` [n, N_max, D] zero-padded past ``lengths`` [n], an optional ``summary`` [n, D'];
    see the module docstring). The output is float [n_images, n_captions], entry [i, j] the score
    of images[i] and texts[j]. A head declares the kinds it scores with ``accepts``
    (`harness.capabilities.DeclaresInputs`, e.g. ``accepts = ("vectors", "sets")``); `itr check`
    checks it on each, and `itr describe` shows them.

    A head must score each pair independently of the other items in the batch; evaluation
    calls it on chunks and relies on that. The one exception exists to reproduce public code
    that leaks (`harness.capabilities.ReadsPairingLabels`); the harness warns, and the
    conformance checks flag it.
    """

    def forward(self, images: "torch.Tensor", texts: "torch.Tensor") -> "torch.Tensor": ...


class Loss(Protocol):
    """Training objective on a batch score matrix: forward(scores, image_ids) -> a scalar Tensor,
    differentiable in `scores`.

    scores: float [B, B + G], B ≥ 2 (pairs of an image and one of its captions). For j < B,
    scores[i, j] = s(image of pair i, caption of pair j): the diagonal holds the positives. G is
    0 unless the job generates feature-level negatives (``generators.negatives``): then G = B and
    column B + k scores each image against the negative generated from caption k's embedding: a
    negative for every row (for row k, a hard one made from its own caption), never a positive.
    With generated positives (``generators.positives``) the trainer calls the loss a second time
    in the step, the generated captions T⁺ in place of the real ones (same layout), and weighs
    the two: (1 − w)·L(I, T) + w·L(I, T⁺), w = ``generators.positive_weight``. In a stage that
    trains on a text source, the pairs are each image with its text.

    image_ids: int64 [B], the dataset image index of each pair. Two captions of one image in a
    batch share an id: scores[i, j] with image_ids[i] == image_ids[j], j ≠ i, is a positive too,
    which a loss should not push down as a negative.

    A loss holds no trainable parameters: the trainer optimises the model's only.

    Optional capabilities (`harness.capabilities`): `ReadsBatch` (the step's embeddings, model,
    progress and text-source rows), `StageHook` (told when its stage starts), `ReportsTerms`
    (parts logged beside the loss).
    """

    def forward(self, scores: "torch.Tensor", image_ids: "torch.Tensor") -> "torch.Tensor": ...


class TextSource(Protocol):
    """Extra texts for training, one per image of a split (registered with ``kind="text-source"``).

    A job names its sources in its ``texts`` section; a stage trains on one of them instead of
    the captions (``stages.<name>.text``), and a loss reading the batch gets the rows of any of
    them (`TrainingBatch.image_texts`). D2S-VSE's dense descriptions are the example.
    ``image_texts(split)`` returns one string per image of `split`, in image order, or raises
    `harness.errors.UserError` naming the file and what is wrong.
    """

    def image_texts(self, split: RetrievalSplit) -> list[str]: ...


class TextSampleGenerator(Protocol):
    """Makes one generated *positive* caption per caption, before encoding (AsCL's T⁺).

    ``__call__(captions, siblings, rng)``: `captions` are the batch's captions, `siblings[k]` all
    captions of the image of caption k (itself included), `rng` the job's seeded generator;
    returns one caption string per input caption.
    """

    level: ClassVar[str]  # "text"

    def __call__(self, captions: Sequence[str], siblings: Sequence[Sequence[str]], rng: Any) -> list[str]: ...


class FeatureSampleGenerator(Protocol):
    """Makes one generated *negative* per caption from its embedding, after encoding (the AsCL paper, §2.2).

    ``__call__(texts, rng)``: caption embeddings (Tensor [B, D] or `VectorSets`) -> embeddings of
    the same kind and size; the trainer appends them as extra columns of the score matrix.
    """

    level: ClassVar[str]  # "feature"

    def __call__(self, texts: Any, rng: "torch.Generator") -> Any: ...


class EvaluationProtocol(Protocol):
    """How a test split is ranked and summarised (`register_protocols`; coco-1k, f30k-1k, ...).

    Attributes:
        name: the key in experiment files and metric names (``coco-1k/rsum``).
        folds: consecutive, near-equal folds of images ranked separately (COCO 1K: 5); a re-rank
            evaluation picks each query's candidates within its fold.
    """

    name: str
    folds: int

    def check(self, split: RetrievalSplit) -> None:
        """Raise `harness.errors.UserError` for a split the protocol is not defined on."""

    def metrics(self, scores: np.ndarray, image_of_caption: np.ndarray, ties: str = "optimistic") -> dict[str, float]:
        """Metrics from the split's score matrix [n_images, n_captions]: at least the six recalls
        and ``rsum`` of `harness.metrics`; ties ``optimistic`` (the papers) or ``pessimistic``."""

    def query_ranks(self, scores: np.ndarray, image_of_caption: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-query 0-based ranks as `metrics` counts them: (i2t rank per image query, the image
        index of each i2t query, t2i rank per caption in caption order, -1 for a caption that
        is no query of the protocol)."""


@runtime_checkable
class ReadsSplitIds(Protocol):
    """A protocol whose positives come from outside the split, keyed by dataset ids (optional):
    ECCV Caption's and CxC's extra matches, by COCO image and caption id.

    Before ranking, the harness calls ``for_split`` with the checked test split (its
    ``image_ids`` and ``caption_ids``) and ranks with the protocol it returns; ``check`` refuses
    a split whose ids are missing or do not cover the protocol's queries. Protocols without it
    (Recall@K) are used as they are.
    """

    def for_split(self, split: RetrievalSplit) -> EvaluationProtocol: ...


@dataclass(frozen=True)
class MethodRecipe:
    """A named method: which components it uses, their default options, and its training stages.

    `defaults` is a nested mapping with the sections of a job config (``image_encoder``,
    ``text_encoder``, ``similarity_head``, ``train``, ``stages``, ``backbones``, ``texts``); an
    experiment file overrides any key of it. A recipe without stages is evaluated without
    training (e.g. the class bridge).
    """

    name: str
    summary: str
    defaults: Mapping[str, Any]
    paper: str = ""

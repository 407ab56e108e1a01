"""Your own queries against a finished job (`itr search`): a caption searches the images of its
test split, an image file searches the captions.

The query goes through exactly the job's pipeline, so a hit list is what the job's evaluation
would have ranked had the query been in the split: a caption is prepared by the job's text
encoder (through its frozen text backbone, if it reads one), an image is read as the job reads
its test images (frozen backbone features, or decoded pixels for an encoder that reads them),
and the query is scored against every gallery item by the job's similarity head, in blocks of
``eval.score_chunk`` items (a cross-attention head such as SCAN scores one query against the
whole gallery densely, whatever ``eval.mode`` the job evaluated with).

The gallery's embeddings are the evaluation's own (`embed_split`), stored once per checkpoint
and split beside the run's results (``results/<experiment>/galleries/``, or
``results/galleries/`` for a checkpoint folder), so later searches embed only the query.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from harness.errors import UserError
from harness.experiment.finished import Reopened, reopen
from harness.interfaces import RetrievalSplit

if TYPE_CHECKING:
    import torch

    from harness.config.experiment_file import DatasetEntry
    from harness.embeddings import Embeddings
    from harness.job.inputs import JobData
    from harness.job.job import Job
    from harness.training.model import RetrievalModel

GALLERIES = "galleries"
"""The folder, beside a run's results, holding the gallery embeddings of its searches."""


@dataclass(frozen=True)
class Query:
    """A caption (`text`: searches the split's images) or an image file (`image`: searches
    its captions); exactly one is set."""

    text: str | None = None
    image: Path | None = None

    @classmethod
    def of(cls, text: str | None, image: Path | None) -> "Query":
        """The query the command line gave; a UserError unless exactly one of them is usable."""
        if (text is None) == (image is None):
            raise UserError("itr search: give exactly one of --text TEXT (searches the images) or --image PATH (searches the captions)")
        if text is not None and not text.strip():
            raise UserError("itr search: --text: the query is empty")
        if image is not None and not image.is_file():
            raise UserError(f"{image}: --image: no such image file")
        return cls(text, image)

    @property
    def gallery(self) -> str:
        """What it searches: ``images`` or ``captions``."""
        return "images" if self.text is not None else "captions"

    def __str__(self) -> str:
        return f"the text {self.text!r}" if self.text is not None else f"the image {self.image}"


@dataclass(frozen=True)
class Hit:
    """One gallery item found: its 1-based rank, the head's score, its index in the split
    (an image index, or a caption index)."""

    rank: int
    score: float
    index: int


@dataclass(frozen=True)
class SearchResult:
    """A finished job's answer to a query on the test split of `target`, best hit first, and
    the file its gallery embeddings came from (`cached`: an earlier search had stored them)."""

    job: "Job"
    source: str
    target: "DatasetEntry"
    split: RetrievalSplit
    query: Query
    hits: list[Hit]
    gallery_file: Path
    cached: bool

    def gallery_line(self) -> str:
        """Where the gallery's embeddings came from, for stderr."""
        split, how = self.split, "read from the cache" if self.cached else "embedded, cached in"
        return f"gallery: {split.n_images} images and {split.n_captions} captions {how} {self.gallery_file}"

    @property
    def searched(self) -> int:
        """How many items the query was scored against."""
        return self.split.n_images if self.query.gallery == "images" else self.split.n_captions

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """(headers, rows of strings, scores to 4 decimals): an image hit shows its id, file
        name and first caption; a caption hit its text and its image's id."""
        split = self.split
        if self.query.gallery == "captions":
            rows = [[hit.rank, f"{hit.score:.4f}", split.captions[hit.index], split.image_ids[split.image_of_caption[hit.index]]] for hit in self.hits]
            return ["rank", "score", "caption", "image id"], rows
        first_caption = _first_captions(split)
        rows = [
            [hit.rank, f"{hit.score:.4f}", split.image_ids[hit.index], split.image_paths[hit.index].name if split.image_paths else "-", first_caption[hit.index]]
            for hit in self.hits
        ]
        return ["rank", "score", "image id", "file", "first caption"], rows


def search(
    host: Any,
    checkpoint: str,
    query: Query,
    top: int,
    dataset_changes: Mapping[str, Any],
    eval_changes: Mapping[str, Any],
    results_dir: Path,
    tracking_uri: str | None,
    cache_dir: Path | None,
) -> SearchResult:
    """The `top` best items of job run `checkpoint`'s (a run id or a checkpoint folder) test
    split for `query`; `dataset_changes` and `eval_changes` as for `reevaluate`."""
    import torch

    from harness.capabilities import READS_PAIRING_LABELS, claims
    from harness.evaluation.scoring import score_matrix
    from harness.features import FeatureCache
    from harness.job.assemble import assemble
    from harness.job.catalog import DataCatalog
    from harness.job.checkpoints import load_weights
    from harness.job.inputs import JobData
    from harness.training.device import resolve_device

    with tempfile.TemporaryDirectory() as scratch:
        found = reopen(checkpoint, dataset_changes, eval_changes, results_dir, tracking_uri, Path(scratch), "itr search")
        job, target, cfg = found.job, found.target, found.job.config.eval
        catalog = DataCatalog(host.registry, f"itr search {checkpoint}")
        split = catalog.split(target, target.test)
        if query.image is not None and split.image_paths is None:
            raise UserError(
                f"itr search: --image: split '{target.test}' of dataset '{target.title}' has precomputed image features only "
                "(no image files, no backbone), so a new image cannot be embedded like its images; search it with --text"
            )
        data = JobData(job, host.registry, catalog, FeatureCache(cache_dir))
        model = assemble(job, host.registry, data.context()).model
        load_weights(model, found.folder)
        if claims(model.head, READS_PAIRING_LABELS):
            raise UserError(f"itr search: {job.config.similarity_head.name} reads the ground-truth pairing, which a new query does not have")
        device = resolve_device(cfg.device, "eval.device")
        model.to(device).eval()
        gallery_file = _gallery_file(results_dir, found, split)
        gallery, cached = _gallery(gallery_file, query.gallery, model, data, target, split, device)
        asked = _embed_query(model, data, query, device, cfg.amp)
        if query.gallery == "images":
            scores = score_matrix(model, gallery, asked, cfg.score_chunk, cfg.amp)[:, 0]
        else:
            scores = score_matrix(model, asked, gallery, cfg.score_chunk, cfg.amp)[0]
    order = torch.sort(scores, descending=True, stable=True).indices[:top].tolist()
    hits = [Hit(rank, float(scores[index]), index) for rank, index in enumerate(order, start=1)]
    return SearchResult(job, found.source, target, split, query, hits, gallery_file, cached)


def _gallery_file(results_dir: Path, found: Reopened, split: RetrievalSplit) -> Path:
    """Where the gallery embeddings of `found`'s checkpoint on `split` are kept: keyed by the
    job's config hash, the checkpoint's weights (their digest), the dataset entry and the
    split's content (its image ids and captions), and the precision they were embedded in."""
    from harness.features import file_digest
    from harness.job.checkpoints import WEIGHTS
    from harness.job.job import config_hash

    job, target = found.job, found.target
    key = {
        "job": job.config_hash,
        "weights": file_digest([found.folder / WEIGHTS]),
        "dataset": target.name,
        "options": target.options,
        "split": split.split,
        "images": _digest(split.image_ids),
        "captions": _digest(split.captions),
        "amp": job.config.eval.amp,
    }
    folder = results_dir / found.experiment / GALLERIES if found.experiment else results_dir / GALLERIES
    return folder / f"{job.config_hash}-{config_hash(key)}.safetensors"


def _gallery(
    path: Path, side: str, model: "RetrievalModel", data: "JobData", target: "DatasetEntry", split: RetrievalSplit, device: "torch.device"
) -> tuple["Embeddings", bool]:
    """(the `side` embeddings (``images`` or ``captions``) of `split` on `device`, whether they
    came from `path`): read from `path`, else the split embedded as the evaluation embeds it
    and both sides stored there, atomically."""
    from safetensors.torch import save_file

    from harness.atomic import write_atomically
    from harness.evaluation.scoring import embed_split

    stored = _read_side(path, side, split.n_images if side == "images" else split.n_captions, device)
    if stored is not None:
        return stored, True
    _, inputs = data.test_inputs(model, target)
    cfg = data.job.config.eval
    images, captions = embed_split(model, inputs, cfg.batch_size, device, cfg.amp)
    tensors = {**_flattened("images", images), **_flattened("captions", captions)}
    write_atomically(path, lambda staging: save_file(tensors, str(staging)))
    return (images if side == "images" else captions), False


def _flattened(side: str, embeddings: "Embeddings") -> dict[str, "torch.Tensor"]:
    """Named CPU tensors of one side: ``side`` for global vectors [n, D]; ``side.vectors``,
    ``side.lengths`` (and ``side.summary``) for `VectorSets`."""
    from harness.embeddings import VectorSets

    if isinstance(embeddings, VectorSets):
        parts = {"vectors": embeddings.vectors, "lengths": embeddings.lengths, "summary": embeddings.summary}
        named = {f"{side}.{name}": tensor for name, tensor in parts.items() if tensor is not None}
    else:
        named = {side: embeddings}
    return {name: tensor.detach().cpu().contiguous() for name, tensor in named.items()}


def _read_side(path: Path, side: str, expected: int, device: "torch.device") -> "Embeddings | None":
    """One side of a stored gallery on `device`, reading only its tensors; None when there is
    none, or (with a warning) when the file is unreadable or holds another number of items."""
    from safetensors import SafetensorError, safe_open

    from harness.embeddings import VectorSets

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as stored:
            names = set(stored.keys())
            if side in names:
                embeddings: Embeddings = stored.get_tensor(side)
            else:
                summary = stored.get_tensor(f"{side}.summary") if f"{side}.summary" in names else None
                embeddings = VectorSets(stored.get_tensor(f"{side}.vectors"), stored.get_tensor(f"{side}.lengths"), summary)
    except (SafetensorError, OSError) as exc:
        print(f"warning: gallery cache {path} is unreadable ({exc}); embedding the gallery again", file=sys.stderr)
        return None
    if len(embeddings) != expected:
        print(f"warning: gallery cache {path} holds {len(embeddings)} {side}, the split {expected}; embedding the gallery again", file=sys.stderr)
        return None
    return embeddings.to(device)


def _embed_query(model: "RetrievalModel", data: "JobData", query: Query, device: "torch.device", amp: bool) -> "Embeddings":
    """The query's embedding (one item, float32 on `device`), through the job's encoders as
    `embed_split` embeds the gallery. A caption's frozen text features are not cached (a
    typed query is rarely asked twice); an image's are, by content, like any image's."""
    import torch

    from harness.config.job_config import CAPTIONS
    from harness.evaluation.scoring import precision
    from harness.training.feeds import as_feed, gather
    from harness.training.model import prepare_texts

    one = [torch.arange(1)]
    with torch.inference_mode(), precision(device, amp):
        if query.text is not None:
            with data.frozen_text.uncached():
                inputs = prepare_texts(model.text_encoder, [query.text], CAPTIONS)
            return model.encode_texts(gather(inputs, one[0], device)).float()
        image = RetrievalSplit("query", "query", (str(query.image),), (), np.zeros(0, np.int64), image_paths=(query.image,))
        feed = as_feed(data.images(model, image, workers=0))
        return model.encode_images(next(iter(feed.batches(one, device, train=False)))).float()


def _first_captions(split: RetrievalSplit) -> list[str]:
    """Each image's first caption in the split's order ('-' for an image without one)."""
    images, first = np.unique(split.image_of_caption, return_index=True)
    captions = ["-"] * split.n_images
    for image, caption in zip(images.tolist(), first.tolist()):
        captions[image] = split.captions[caption]
    return captions


def _digest(texts: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(texts)).encode("utf-8")).hexdigest()

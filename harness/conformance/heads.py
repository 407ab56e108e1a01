"""Checks of similarity heads (`harness.interfaces.SimilarityHead`), above all for leaks.

Evaluation fills the test score matrix block by block and ranks it, so a head's score for
(image i, caption j) must be a function of that image and that caption only:

- ``leakage/batch-order``: permute the images and the captions of a batch; the score matrix must
  be the old one, permuted. A head that pairs items by position (caption k with image k, as the
  public AsCL code's test-time pooling does) fails here.
- ``leakage/batch-composition``: score sub-batches (evaluation's own chunking) and a batch in
  which the other items were replaced; every shared pair must keep its score. A head that
  normalises over the batch (a softmax over the captions, batch statistics) fails here.
- ``leakage/pairing-labels``: evaluation must not read which caption belongs to which image. A
  head declaring ``reads_pairing_labels`` is given them (`harness.evaluation.evaluate`) and fails;
  for the others, the score matrix evaluation produces must not change when only the labels do.

Checked on its own, a head that declares its inputs (``accepts``,
`harness.capabilities.DeclaresInputs`) is checked once on each kind it declares, each a block
of rows (``similarity-head:my-head on sets``); one that declares none, on the first kind of
synthetic input it scores without raising.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.conformance.compare import require_close, require_finite
from harness.conformance.evaluated import CHUNK, evaluate_split
from harness.conformance.report import CheckFailed, CheckResult, CheckSkipped, one_line
from harness.conformance.sources import DEFAULT_DIM, EmbeddingSource, synthetic_candidates
from harness.conformance.subject import (
    ComponentChecks,
    Subject,
    checkpoint_round_trip,
    determinism,
    devices,
    gradients,
    require_module,
)
from harness.conformance.synthetic import as_leaf, leaves
from harness.embeddings import Embeddings, VectorSets, concat
from harness.errors import UserError

N_IMAGES, N_CAPTIONS = 4, 8
"""The checks' batch: 4 images × 8 captions (a multiple, so heads that pair caption k with image
k mod n_images, as in a training batch with generated columns, can run at all)."""
IMAGE_ORDER = torch.tensor([2, 0, 3, 1])
CAPTION_ORDER = torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])


class HeadChecks(ComponentChecks):
    """interface, the three leakage checks, pair scoring (re-rank), determinism, gradients, checkpoint.

    Args:
        subject: the head with its options.
        sources: the (images, captions) inputs to use (a method's encoders); None feeds the
            synthetic inputs of each kind the head declares, or probes `synthetic_candidates`.
        inputs: the one declared input kind to feed (a key of `harness.capabilities.HEAD_INPUTS`).
    """

    CHECKS = (
        ("interface", "interface"),
        ("leakage/pairing-labels", "pairing_labels"),
        ("leakage/batch-order", "batch_order"),
        ("leakage/batch-composition", "batch_composition"),
        ("pairs", "pairs"),
        ("determinism", "determinism"),
        ("gradients", "gradients"),
        ("checkpoint", "checkpoint"),
    )

    def __init__(
        self, subject: Subject, sources: tuple[EmbeddingSource, EmbeddingSource] | None = None, inputs: str | None = None
    ) -> None:
        super().__init__(subject)
        self.inputs = inputs
        self.sources = synthetic_candidates(subject.data, self._dim())[inputs] if inputs is not None else sources

    @property
    def title(self) -> str:
        return f"{self.subject.title} on {self.inputs}" if self.inputs is not None else self.subject.title

    def run(self) -> list[CheckResult]:
        """All checks, once per input kind the head declares when it is checked on its own."""
        declared = self._declared() if self.sources is None else None
        if not declared:
            return super().run()
        return [result for kind in declared for result in HeadChecks(self.subject, inputs=kind).run()]

    def _declared(self) -> tuple[str, ...] | None:
        """The input kinds the head declares; None when it declares none, cannot be built or
        declares nonsense (the interface check then says why)."""
        from harness.capabilities import declared_inputs

        try:
            return declared_inputs(self.primary, self.title)
        except Exception:
            return None

    def _dim(self) -> int:
        """The size of synthetic embeddings: the head's ``embed_dim`` when it has one."""
        return int(self.subject.options.get("embed_dim", self.subject.spec.defaults().get("embed_dim", DEFAULT_DIM)))

    def batch(self, salt: int = 0) -> tuple[Embeddings, Embeddings]:
        images, texts = self.sources
        return images(N_IMAGES, 10 + salt), texts(N_CAPTIONS, 20 + salt)

    def scores(self, head: Any, images: Embeddings, texts: Embeddings) -> torch.Tensor:
        head.eval()
        with torch.no_grad():
            return head(images, texts)

    def score_or_fail(self, images: Embeddings, texts: Embeddings, what: str) -> torch.Tensor:
        """Scores of another batch; a head that cannot score it cannot be evaluated block by block."""
        try:
            return self.scores(self.primary, images, texts)
        except Exception as exc:
            raise CheckFailed(f"scoring {what} raised {one_line(exc)}") from None

    def eval_outputs(self, head: Any) -> dict[str, torch.Tensor]:
        return {"scores": self.scores(head, *self.batch())}

    # -- checks ----------------------------------------------------------------------------------

    def interface(self) -> str:
        from harness.capabilities import declared_inputs

        head = require_module(self.primary)
        try:
            declared_inputs(head, "the head")
        except UserError as exc:
            raise CheckFailed(str(exc)) from None
        if self.sources is None:
            self.sources = self._probe(head)
        images, texts = self.batch()
        for device in devices():
            head.to(device)
            try:
                out = self.scores(head, images.to(device), texts.to(device))
            except Exception as exc:
                if self.inputs is None:
                    raise
                raise CheckFailed(f"it accepts {self.inputs!r}, but scoring {self.sources[0].description} raised {one_line(exc)}") from None
            if not isinstance(out, torch.Tensor):
                raise CheckFailed(f"forward returned {type(out).__name__}, not a Tensor [n_images, n_captions]")
            if out.device.type != device.type:
                raise CheckFailed(f"scores on {out.device} for inputs on {device}")
        head.to("cpu")
        if tuple(out.shape) != (N_IMAGES, N_CAPTIONS):
            raise CheckFailed(f"scores for {N_IMAGES} images × {N_CAPTIONS} captions have shape {list(out.shape)}")
        if not out.is_floating_point():
            raise CheckFailed(f"scores must be floating point, got {out.dtype}")
        require_finite(out, "scores")
        return f"scores [{N_IMAGES}, {N_CAPTIONS}] {str(out.dtype).removeprefix('torch.')} from {self.sources[0].description}"

    def _probe(self, head: Any) -> tuple[EmbeddingSource, EmbeddingSource]:
        """The first kind of synthetic input the head scores without raising."""
        errors = []
        for candidate in synthetic_candidates(self.subject.data, self._dim()).values():
            images, texts = candidate
            try:
                self.scores(head, images(N_IMAGES, 10), texts(N_CAPTIONS, 20))
            except Exception as exc:  # the head refuses this kind of input: try the next
                errors.append(f"{images.description}: {one_line(exc)}")
                continue
            return candidate
        raise CheckFailed("the head scores none of the synthetic inputs; " + "; ".join(errors))

    def pairing_labels(self) -> str:
        head = self.primary
        if getattr(head, "reads_pairing_labels", False):
            raise CheckFailed(
                "the head declares reads_pairing_labels = True, so evaluation hands it the "
                "ground-truth pairing (score_with_pairing) and its test scores depend on the answer"
            )
        images, texts = self.batch()
        one = torch.arange(N_CAPTIONS) // (N_CAPTIONS // N_IMAGES)
        other = (one + 1) % N_IMAGES
        require_close(
            _evaluated_scores(head, images, texts, other),
            _evaluated_scores(head, images, texts, one),
            "the score matrix of evaluation changed when only the ground-truth pairing changed",
            ("image", "caption"),
        )
        return "evaluation scores do not depend on the pairing labels"

    def batch_order(self) -> str:
        images, texts = self.batch()
        expected = self.scores(self.primary, images, texts)[IMAGE_ORDER][:, CAPTION_ORDER]
        actual = self.score_or_fail(images[IMAGE_ORDER], texts[CAPTION_ORDER], "the reordered batch")
        require_close(
            actual,
            expected,
            "a pair's score changed when the images and captions of the batch were reordered",
            ("permuted image", "permuted caption"),
        )
        return "permuting images and captions permutes the score matrix, nothing else"

    def batch_composition(self) -> str:
        from harness.evaluation.scoring import score_matrix
        from harness.training.model import RetrievalModel

        images, texts = self.batch()
        expected = self.scores(self.primary, images, texts)
        model = RetrievalModel(nn.Identity(), nn.Identity(), self.primary).eval()
        try:
            chunked = score_matrix(model, images, texts, CHUNK)
        except Exception as exc:
            raise CheckFailed(
                f"scoring the batch in {CHUNK} × {CHUNK} blocks, as evaluation does, "
                f"raised {one_line(exc)}"
            ) from None
        require_close(
            chunked,
            expected,
            f"a pair's score changed when the batch was scored in {CHUNK} × {CHUNK} blocks",
            ("image", "caption"),
        )
        fresh_images, fresh_texts = self.batch(salt=5)
        half_i, half_c = N_IMAGES // 2, N_CAPTIONS // 2
        mixed = self.score_or_fail(
            concat([images[:half_i], fresh_images[half_i:]]),
            concat([texts[:half_c], fresh_texts[half_c:]]),
            "a batch with other items",
        )
        require_close(
            mixed[:half_i, :half_c],
            expected[:half_i, :half_c],
            "a pair's score changed when the other items of the batch were replaced",
            ("image", "caption"),
        )
        return f"{CHUNK} × {CHUNK} blocks and replaced neighbours leave every score unchanged"

    def pairs(self) -> str:
        """A head that scores explicit pairs (`harness.capabilities.ScoresPairs`, what re-rank
        evaluation calls) gives each pair the score `forward` gives it in the dense block."""
        from harness.capabilities import READS_PAIRING_LABELS, SCORES_PAIRS, claims

        if not claims(self.primary, SCORES_PAIRS):
            raise CheckSkipped("no score_pairs: re-rank evaluation scores each query's candidates through forward")
        if claims(self.primary, READS_PAIRING_LABELS):
            raise CheckSkipped("the head reads the pairing labels: its pairs cannot be scored apart (leakage/pairing-labels fails it)")
        images, texts = self.batch()
        expected = self.scores(self.primary, images, texts)
        generator = torch.Generator().manual_seed(self.subject.seed)
        image_index = torch.randint(N_IMAGES, (3 * N_CAPTIONS,), generator=generator)
        caption_index = torch.randint(N_CAPTIONS, (3 * N_CAPTIONS,), generator=generator)
        with torch.no_grad():
            try:
                got = self.primary.score_pairs(images, texts, image_index, caption_index)
            except Exception as exc:
                raise CheckFailed(f"score_pairs raised {one_line(exc)}") from None
        if tuple(got.shape) != (len(image_index),):
            raise CheckFailed(f"score_pairs returned shape {list(got.shape)} for {len(image_index)} pairs")
        require_close(got, expected[image_index, caption_index], "score_pairs differs from the dense scores", ("pair",))
        return f"{len(image_index)} scattered pairs, each scored as in the dense block"

    def determinism(self) -> str:
        images, texts = self.batch()
        seed = self.subject.seed

        def run(head: Any) -> dict[str, torch.Tensor]:
            outputs = {"scores": self.scores(head, images, texts)}
            head.train()
            torch.manual_seed(seed + 7)
            with torch.no_grad():
                outputs["training-mode scores"] = head(images, texts)
            return outputs

        return determinism(self.subject, run, first=self.primary)

    def gradients(self) -> str:
        images, texts = (as_leaf(x) for x in self.batch())
        weights = torch.randn(N_IMAGES, N_CAPTIONS, generator=torch.Generator().manual_seed(self.subject.seed))
        note = gradients(self.primary, lambda head: (head(images, texts) * weights).sum())
        for side, embeddings in (("image", images), ("caption", texts)):
            for name, tensor in leaves(embeddings):
                if tensor.grad is None:
                    raise CheckFailed(f"no gradient flows back to the {side} {name}: the encoders would never train")
                require_finite(tensor.grad, f"gradient of the {side} {name}")
        return note + "; gradients reach both encoders"

    def checkpoint(self) -> str:
        return checkpoint_round_trip(self.subject, self.primary, self.eval_outputs)


class _Passthrough(nn.Module):
    """An 'encoder' that hands evaluation's gathered rows back as the embeddings they were."""

    def forward(self, inputs: dict[str, torch.Tensor]) -> Embeddings:
        if "lengths" not in inputs:
            return inputs["vectors"]
        width = int(inputs["lengths"].max())
        return VectorSets(inputs["vectors"][:, :width], inputs["lengths"], inputs.get("summary"))


def _as_rows(embeddings: Embeddings) -> dict[str, torch.Tensor]:
    if isinstance(embeddings, VectorSets):
        rows = {"vectors": embeddings.vectors, "lengths": embeddings.lengths}
        if embeddings.summary is not None:
            rows["summary"] = embeddings.summary
        return rows
    return {"vectors": embeddings}


def _evaluated_scores(head: Any, images: Embeddings, texts: Embeddings, image_of_caption: torch.Tensor) -> torch.Tensor:
    """The score matrix `harness.evaluation.evaluate` ranks for these embeddings and labels."""
    from harness.training.model import RetrievalModel, SplitInputs

    model = RetrievalModel(_Passthrough(), _Passthrough(), head)
    return evaluate_split(model, SplitInputs(_as_rows(images), _as_rows(texts), image_of_caption)).scores

"""The score matrix evaluation ranks, taken from `harness.evaluation.evaluate` itself.

Checks compare scores where the harness would compute them: through the real evaluation path
(embedding in batches, the chunked score matrix, or ``score_with_pairing`` for a head that reads
the pairing labels), not through a re-implementation of it.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch

CHUNK = 3
"""Evaluation's block size in the checks: not a divisor of the synthetic batch sizes."""


class _RecordingProtocol:
    """The ``full`` protocol, keeping the score matrix evaluation hands it."""

    name = "full"

    def __init__(self) -> None:
        from harness.protocols import PROTOCOLS

        self.protocol = PROTOCOLS["full"]
        self.scores: torch.Tensor | None = None

    def metrics(self, scores: Any, image_of_caption: Any, ties: str = "optimistic") -> dict[str, float]:
        self.scores = torch.as_tensor(scores).clone()
        return self.protocol.metrics(scores, image_of_caption, ties=ties)


def evaluate_split(model: Any, data: Any) -> tuple[dict[str, float], torch.Tensor]:
    """(metrics of the ``full`` protocol, score matrix [n_images, n_captions]) of `model` on the
    split inputs `data`, on the CPU, with evaluation's warnings kept off the terminal."""
    from harness.evaluation import evaluate

    recorder = _RecordingProtocol()
    with contextlib.redirect_stderr(io.StringIO()):
        metrics = evaluate(model, data, [recorder], batch_size=3, chunk=CHUNK, device=torch.device("cpu"))
    return metrics, recorder.scores

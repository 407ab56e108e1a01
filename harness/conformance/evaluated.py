"""The scores evaluation ranks, taken from the real evaluation path.

Checks compare scores where the harness computes them (`harness.evaluation.evaluate_split`:
embedding in batches, the job's strategy, the chunked score matrix or ``score_with_pairing``
for a head that reads the pairing labels), not through a re-implementation of it.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from harness.config.job_config import EvalConfig

CHUNK = 3
"""Evaluation's block size in the checks: not a divisor of the synthetic batch sizes."""

CHECK_EVALUATION = EvalConfig(device="cpu", batch_size=3, score_chunk=CHUNK)


def evaluate_split(model: Any, data: Any) -> Any:
    """The `Evaluation` (metrics of the ``full`` protocol, score matrix) of `model` on the split
    inputs `data`, on the CPU, with evaluation's warnings kept off the terminal."""
    from harness.evaluation.evaluate import evaluate_split as evaluate
    from harness.evaluation.protocols import full

    with contextlib.redirect_stderr(io.StringIO()):
        return evaluate(model, data, {"full": full()}, CHECK_EVALUATION)

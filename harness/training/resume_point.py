"""Resume points: everything a stopped training needs to go on exactly where it was.

A cluster preempts a long job with SIGTERM and then SIGKILL; without a resume point the job
starts again from epoch 0. The trainer writes one every `TrainConfig.resume_every` steps (0: at
the end of every epoch): the model, the optimiser, the GradScaler, the current stage's loss and
the sample generators (their ``state_dict`` where they are modules, their random streams), the
Python, NumPy and torch (CPU and CUDA) random states, the position (stage, epoch, batch), the
current epoch's batch order and losses so far, and the per-epoch history. Restored, the rest of
the run draws the same numbers as an uninterrupted one, so it ends with the same weights.

The file is a single ``torch.save`` written beside its final name and renamed
(`harness.atomic`): a kill while writing leaves the previous point. It holds tensors and plain
Python values only and is read with ``weights_only=True`` (no pickled code). The file also keeps
its `owner`, the job's config hash and MLflow run, so the next invocation knows which run it
continues (`harness.job.resumption`).
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from harness.atomic import write_atomically

FORMAT = 1
"""Bumped when the content changes meaning; a point of another format is not resumed."""


def random_states() -> dict[str, Any]:
    """The process's random states: Python's, NumPy's legacy global one, torch's CPU and CUDA
    (only once CUDA is in use: asking earlier would start it in a CPU job)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def restore_random_states(states: Mapping[str, Any]) -> None:
    """Set the states `random_states` returned (CUDA's only where the devices are the same)."""
    random.setstate(states["python"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def module_states(components: list[Any]) -> list[dict[str, torch.Tensor] | None]:
    """``state_dict()`` of each component that is a module (None for a plain callable)."""
    return [component.state_dict() if isinstance(component, torch.nn.Module) else None for component in components]


def load_module_states(components: list[Any], states: list[dict[str, torch.Tensor] | None]) -> None:
    for component, state in zip(components, states):
        if state is not None:
            component.load_state_dict(state)


class ResumeFile:
    """One job's resume point on disk: `path`, written every `every` steps (0: every epoch end).

    `owner` ({"config_hash", "run_id"}) is stored with each point; `state` is the point this
    training starts from (None: from the beginning). `writes` is False in a data-parallel rank
    other than 0, which reads the point but leaves writing it to rank 0.
    """

    def __init__(self, path: Path, every: int, owner: Mapping[str, str], state: Mapping[str, Any] | None = None, writes: bool = True) -> None:
        self.path, self.every, self.owner, self.state, self.writes = Path(path), every, dict(owner), state, writes

    def due(self, steps_done: int, epoch_ended: bool) -> bool:
        """Whether a point is written now, after `steps_done` steps of the job in this epoch."""
        if not self.writes:
            return False
        return epoch_ended if self.every == 0 else steps_done % self.every == 0

    def write(self, state: Mapping[str, Any]) -> None:
        payload = {"format": FORMAT, "owner": self.owner, "state": dict(state)}
        write_atomically(self.path, lambda staging: torch.save(payload, staging))

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def read_point(path: Path) -> tuple[dict[str, str], dict[str, Any]] | None:
    """(owner, state) of the point at `path`; None if there is none or it cannot be used (an
    unreadable file or another format: the job then starts from the beginning)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # damaged: as good as none
        return None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return None
    return payload["owner"], payload["state"]

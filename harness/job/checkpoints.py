"""Checkpoints: a job's trained weights (safetensors) beside the job that produced them (JSON).

Safetensors holds tensors only, so loading a checkpoint from a stranger runs no code (no pickle).
The JSON is the fully resolved job, so `itr eval` rebuilds exactly the model that was trained.
Both files are written under temporary names and renamed: an interrupted save leaves nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.atomic import write_atomically, write_text_atomically
from harness.errors import UserError

WEIGHTS = "model.safetensors"
JOB = "job.json"


def save(model: Any, job: Any, folder: Path) -> Path:
    """Write ``model.safetensors`` and ``job.json`` into `folder`; returns the folder."""
    from safetensors.torch import save_model

    write_atomically(folder / WEIGHTS, lambda staging: save_model(model, str(staging)))
    write_text_atomically(folder / JOB, json.dumps(job.to_record(), indent=1, default=str))
    return folder


def read_job(folder: Path) -> dict[str, Any]:
    path = folder / JOB
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{folder}: no {JOB}; not an itr-harness checkpoint") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: corrupt checkpoint record (line {exc.lineno}: {exc.msg})") from None


def load_weights(model: Any, folder: Path) -> None:
    """Load ``model.safetensors`` into `model`; a mismatch (another method, another vocabulary,
    a truncated file) is a UserError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = folder / WEIGHTS
    if not path.is_file():
        raise UserError(f"{path}: checkpoint weights not found")
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except (SafetensorError, OSError) as exc:
        raise UserError(f"{path}: unreadable checkpoint ({exc})") from None
    except RuntimeError as exc:  # shape mismatch
        raise UserError(f"{path}: weights do not fit this model ({str(exc).splitlines()[0]})") from None
    if missing or unexpected:
        raise UserError(
            f"{path}: weights do not fit this model (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )

"""Checkpoints: a job's trained weights (safetensors) beside the job that produced them (JSON).

Safetensors holds tensors only, so loading a checkpoint from a stranger runs no code (no pickle).
The JSON is the fully resolved job, so `itr eval` rebuilds exactly the model that was trained.
Both files are written under temporary names and renamed: an interrupted save leaves nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.errors import UserError

WEIGHTS = "model.safetensors"
JOB = "job.json"


def job_record(job: Any) -> dict[str, Any]:
    """What it takes to rebuild a job: recipe, label, dataset entry, seed, resolved config."""
    import harness

    return {
        "label": job.label,
        "group": job.group,
        "axes": dict(job.axes),
        "method": job.method,
        "dataset": job.dataset.model_dump(),
        "seed": job.seed,
        "config_hash": job.config_hash,
        "resolved": job.resolved,
        "itr_version": harness.__version__,
    }


def save(model: Any, job: Any, folder: Path) -> Path:
    """Write ``model.safetensors`` and ``job.json`` into `folder`; returns the folder."""
    from safetensors.torch import save_model

    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{WEIGHTS}.tmp"
    save_model(model, str(staging))
    os.replace(staging, folder / WEIGHTS)
    staging = folder / f".{JOB}.tmp"
    staging.write_text(json.dumps(job_record(job), indent=1, default=str))
    os.replace(staging, folder / JOB)
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

"""Device selection: the user's choice, or the best accelerator present."""

from __future__ import annotations

import torch

from harness.errors import UserError


def resolve_device(name: str = "auto", key: str = "train.device") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; anything else is passed to torch.device.
    `key` is the configuration key the name came from, for the error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"{key}: '{name}' is not a device ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}: '{name}' requested but CUDA is not available")
    return device

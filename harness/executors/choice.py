"""Which executor runs an experiment's jobs: ``--executor``, ``--workers`` and its options."""

from __future__ import annotations

from typing import Any, Mapping

from harness.errors import UserError
from harness.registry import Registry


def choose_executor(registry: Registry, name: str | None, workers: int | None, options: Mapping[str, Any]) -> Any:
    """The named executor (default: ``in-process``, or ``local`` for more than one worker),
    built with `options` and, when given, `workers`."""
    name = name or ("local" if workers and workers > 1 else "in-process")
    options = dict(options)
    if workers is not None:
        options.setdefault("workers", workers)
    spec = registry.get("executor", name)
    if workers is not None and "workers" not in spec.options_schema():
        raise UserError(f"--workers: executor {name!r} has no workers option; options: {', '.join(spec.options_schema()) or 'none'}")
    return spec.build(options, f"--executor {name}")

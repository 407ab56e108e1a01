"""What a plugin can extend: the table of contents of itr-harness.

Each `register_*` hook hands the plugin a ``register(name, factory, **meta)`` callable. `factory`
is a callable or a ``"module:attr"`` string, so registering costs no import: torch and
transformers load only when a component is built. Names are global per kind; registering a taken
name is an error naming both plugins, and a hook implementation whose name is not one of these
(a misspelt ``register_loss``) refuses its plugin. See docs/plugins.md.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT_NAME = "itr_harness"
ENTRY_POINT_GROUP = "itr_harness"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[..., None]


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset formats and named datasets: ``register(name, factory)``; and sources of
    extra per-image training texts (dense descriptions): ``register(name, factory, kind="text-source")``."""


@hookspec
def register_encoders(register: Register) -> None:
    """Register encoders: ``register(name, factory, kind=...)`` with kind one of
    ``image`` / ``text`` (trainable encoders) or ``image-backbone`` / ``text-backbone`` (frozen)."""


@hookspec
def register_similarity_heads(register: Register) -> None:
    """Register score functions (cosine, cross attention, fusion): ``register(name, factory)``."""


@hookspec
def register_sample_generators(register: Register) -> None:
    """Register text-level and feature-level positive/negative generators: ``register(name, factory)``."""


@hookspec
def register_losses(register: Register) -> None:
    """Register training objectives (triplet variants, InfoNCE, distillation): ``register(name, factory)``."""


@hookspec
def register_methods(register: Register) -> None:
    """Register method recipes (`harness.interfaces.MethodRecipe`): ``register(name, recipe)``."""


@hookspec
def register_protocols(register: Register) -> None:
    """Register evaluation protocols (`harness.interfaces.EvaluationProtocol`; coco-1k, f30k-1k, ...):
    ``register(name, factory)``; `factory()` returns the protocol."""


@hookspec
def register_executors(register: Register) -> None:
    """Register ways to run the jobs of an experiment: ``register(name, factory)``."""


@hookspec
def before_job(job: Any) -> None:
    """Called before a job trains or evaluates (observer; return value ignored)."""


@hookspec
def after_job(job: Any, metrics: dict[str, float]) -> None:
    """Called after a job finished with its metrics (observer)."""


@hookspec
def on_leaderboard(frame: Any) -> None:
    """Called with the leaderboard `pandas.DataFrame` before it is printed and written (observer)."""

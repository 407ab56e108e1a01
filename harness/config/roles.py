"""The one table of component kinds, and of the roles they play in a job.

A *kind* is what a plugin registers (``loss``, ``similarity-head``); a *role* is where a job's
configuration names a component of that kind (``similarity_head``, ``stages.main.loss``). Every
other module asks this table instead of spelling kinds itself.
"""

from __future__ import annotations

MODEL_ROLES: dict[str, str] = {
    "image_encoder": "image-encoder",
    "text_encoder": "text-encoder",
    "similarity_head": "similarity-head",
}
"""The three components a retrieval model is composed of: job-config section -> kind."""

BACKBONE_ROLES: dict[str, str] = {"image": "image-backbone", "text": "text-backbone"}
"""``backbones.<role>`` -> kind: the frozen models that turn raw images and captions into features."""

KINDS: tuple[str, ...] = (
    "dataset",
    "text-source",
    *MODEL_ROLES.values(),
    *BACKBONE_ROLES.values(),
    "sample-generator",
    "loss",
    "method",
    "protocol",
    "executor",
)
"""Every kind of registered component."""

BUILT_FROM_DATA: frozenset[str] = frozenset({*MODEL_ROLES.values(), "sample-generator", "loss"})
"""Kinds whose factories take a `harness.interfaces.BuildContext` first: they are sized by the data."""

REGISTER_HOOKS: dict[str, str | None] = {
    "register_datasets": "dataset",
    "register_encoders": None,  # the kind is given per call: see ENCODER_KINDS
    "register_similarity_heads": "similarity-head",
    "register_sample_generators": "sample-generator",
    "register_losses": "loss",
    "register_methods": "method",
    "register_protocols": "protocol",
    "register_executors": "executor",
}
"""Each registering hook and the kind of what it registers (None: the call says)."""

ENCODER_KINDS: dict[str, str] = {
    "image": "image-encoder",
    "text": "text-encoder",
    "image-backbone": "image-backbone",
    "text-backbone": "text-backbone",
}
"""``register_encoders``' ``kind=`` spellings -> kinds."""

CHECKED_KINDS: tuple[str, ...] = (
    "method",
    *MODEL_ROLES.values(),
    "loss",
    "sample-generator",
    *BACKBONE_ROLES.values(),
    "text-source",
)
"""Kinds with contract checks (`itr check`), in the order a method's checks run."""

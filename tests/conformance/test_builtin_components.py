"""Every built-in component and method passes `itr check` (the registry of the real plugin manager).

Joint-space sizes are cut to a few dozen dimensions where a component's defaults are paper-sized,
so each check takes about a second; the checks themselves do not depend on the size.
"""

from __future__ import annotations

import pytest

from harness.conformance import run_checks
from harness.conformance.targets import CHECKED_KINDS
from harness.plugin_manager import PluginHost
from tests.tiny_models import checkpoint_options

HOST = PluginHost(strict=True)
REGISTRY = HOST.registry

TINY = {"embed_dim": 32, "word_dim": 16, "mlp_hidden": 16, "num_tokens": 4, "decoder_depth": 1, "image_size": 64}
"""Option values that shrink a component without changing what it computes."""

ROLES = {"image_encoder": "image-encoder", "text_encoder": "text-encoder", "similarity_head": "similarity-head"}

COMPONENTS = [f"{kind}:{name}" for kind in CHECKED_KINDS if kind != "method" for name in REGISTRY.names(kind)]
METHODS = [f"method:{name}" for name in REGISTRY.names("method")]


def tiny_options(kind: str, name: str, checkpoints: dict[str, str]) -> dict:
    """Shrunk sizes, and a tiny checkpoint for a component that reads a model folder."""
    schema = REGISTRY.get(kind, name).options_schema()
    return {**{key: value for key, value in TINY.items() if key in schema}, **checkpoint_options(name, checkpoints)}


def tiny_overrides(method: str, checkpoints: dict[str, str]) -> dict:
    """Dotted overrides that shrink every component of a recipe that has a size option."""
    defaults = REGISTRY.get("method", method).load().defaults
    overrides = {}
    for role, kind in ROLES.items():
        name = defaults.get(role, {}).get("name", "cosine" if role == "similarity_head" else None)
        overrides.update({f"{role}.{key}": value for key, value in tiny_options(kind, name, checkpoints).items()})
        if "model_path" in REGISTRY.get(kind, name).options_schema():  # a fine-tuned BERT-style text encoder
            overrides[f"{role}.model_path"] = checkpoints["bert"]
    return overrides


def test_the_builtin_plugins_register_components_of_every_checked_kind():
    assert {kind for kind in CHECKED_KINDS if REGISTRY.names(kind)} == set(CHECKED_KINDS)


@pytest.mark.parametrize("target", COMPONENTS)
def test_builtin_component_passes_every_check(target, tiny_checkpoints):
    kind, _, name = target.partition(":")
    report = run_checks(REGISTRY, target, tiny_options(kind, name, tiny_checkpoints))
    report.assert_ok()
    assert report.get("interface").status == "pass"


@pytest.mark.parametrize("target", METHODS)
def test_builtin_method_passes_every_check(target, tiny_checkpoints):
    report = run_checks(REGISTRY, target, tiny_overrides(target.partition(":")[2], tiny_checkpoints))
    report.assert_ok()
    assert report.get("pipeline", target).status == "pass"
    assert report.get("checkpoint", target).status == "pass"

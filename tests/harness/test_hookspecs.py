"""Every hook is documented and exercised (datasette's rule: a hook without both is not done)."""

from __future__ import annotations

import inspect
import pytest

from harness import hookspecs
from harness.hookspecs import hookimpl
from harness.config.roles import REGISTER_HOOKS
from harness.plugin_manager import PluginHost
from tests.helpers import REPO_ROOT

HOOKS = sorted(
    name for name, fn in vars(hookspecs).items() if inspect.isfunction(fn) and hasattr(fn, "itr_harness_spec")
)


OBSERVER_HOOKS = {"before_job", "after_job", "on_leaderboard"}


def test_hookspecs_are_found():
    assert {"register_losses", "before_job", "on_leaderboard"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_in_the_plugin_guide(hook):
    assert f"`{hook}`" in (REPO_ROOT / "docs" / "plugins.md").read_text()


def test_every_hook_is_covered_by_a_test():
    """Register hooks are exercised below; observers by end_to_end/test_observer_hooks.py.
    A new hook fails here until it joins one of the two, with its test."""
    assert set(HOOKS) == set(REGISTER_HOOKS) | OBSERVER_HOOKS


@pytest.mark.parametrize("hook", sorted(REGISTER_HOOKS))
def test_every_register_hook_adds_components_of_its_kind(hook):
    kind_option = {"kind": "text"} if hook == "register_encoders" else {}

    class Plugin:
        pass

    def implementation(register):
        register(f"probe-{hook}", "itr_probe_module:Probe", **kind_option)

    implementation.__name__ = hook
    setattr(Plugin, hook, staticmethod(hookimpl(implementation)))
    host = PluginHost(entry_points=False, extra_plugins=[Plugin()])
    [spec] = list(host.registry)
    assert spec.name == f"probe-{hook}"
    assert spec.kind == (REGISTER_HOOKS[hook] or "text-encoder")

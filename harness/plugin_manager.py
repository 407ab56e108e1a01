"""The one owner of the pluggy plugin manager (tox style): load plugins, collect components.

Plugins come from three places, loaded one by one so a broken plugin cannot take the others
down (llm #1280): the ``itr_harness`` entry-point group (built-ins and third-party packages alike),
loose ``*.py`` files in ``--plugins-dir``, and objects passed in by tests. Environment:

- ``ITR_LOAD_PLUGINS=a,b``: load only these entry-point plugins (empty string: none).
- ``ITR_DISABLE_PLUGINS=a,b``: skip these.

The rest of the core never touches ``pm.hook``: it asks `PluginHost.registry` for components
and calls the observer hooks through the typed `Observers` facade. A plugin with a hook
implementation that matches no specification (a misspelt ``register_loss``) is refused like one
that fails to import, naming the plugin and the hook, so it cannot do nothing silently.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

import pluggy

from harness import hookspecs
from harness.config.roles import ENCODER_KINDS, REGISTER_HOOKS
from harness.errors import UserError, closest
from harness.registry import ComponentSpec, Factory, Registry


@dataclass
class PluginInfo:
    """What `itr plugins` shows for one plugin."""

    name: str
    version: str
    source: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


class PluginHost:
    """Loads plugins and exposes what they registered.

    Args:
        strict: a plugin that fails to import or register is fatal (``--strict-plugins``).
        plugins_dir: a folder of loose ``*.py`` plugin files (``--plugins-dir``).
        extra_plugins: plugin objects or modules registered directly (tests, notebooks).
        entry_points: load the ``itr_harness`` entry-point group (default True).
        debug: print the traceback of each plugin that fails to import or register (``--debug``),
            beside the one-line warning.
    """

    def __init__(
        self,
        *,
        strict: bool = False,
        plugins_dir: Path | None = None,
        extra_plugins: Iterable[Any] = (),
        entry_points: bool = True,
        debug: bool = False,
    ) -> None:
        self.strict = strict
        self.debug = debug
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.registry = Registry()
        self.registry.host_options = {"strict": strict, "plugins_dir": plugins_dir}
        if entry_points:
            self._load_entry_points()
        if plugins_dir is not None:
            self._load_directory(plugins_dir)
        for plugin in extra_plugins:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
            self._add(plugin, PluginInfo(name=name, version="-", source="direct"))
        try:
            self.pm.check_pending()  # `_add` refused every unspecified hook; this is the guarantee
        except pluggy.PluginValidationError as exc:
            raise UserError(f"plugin '{exc.plugin_name}': {exc}") from None
        self._collect_components()
        self.observers = Observers(self.pm.hook)

    # -- loading ------------------------------------------------------------------------------

    def listing(self) -> list[tuple[PluginInfo, str]]:
        """Every plugin with what it registered (``kind:name, ...``) or why it failed."""
        rows = []
        for info in self.plugins.values():
            components = ", ".join(f"{spec.kind}:{spec.name}" for spec in self.registry.by_plugin(info.name))
            rows.append((info, f"FAILED: {info.error}" if info.error else components or "-"))
        return rows

    def _fail(self, info: PluginInfo, message: str, exc: BaseException | None = None) -> None:
        """Record why a plugin did not load; with `debug`, print `exc`'s traceback first."""
        info.error = message
        self.plugins[info.name] = info
        self.registry.failed_plugins[info.name] = message
        if self.debug and exc is not None:
            sys.stderr.write(f"plugin '{info.name}' ({info.source}) failed:\n{''.join(traceback.format_exception(exc))}")
        if self.strict:
            raise UserError(f"plugin '{info.name}' ({info.source}): {message}")
        print(f"warning: plugin '{info.name}' skipped: {message}", file=sys.stderr)

    def _add(self, plugin: Any, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=info.name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            self._fail(info, f"not a valid plugin ({exc})", exc)
            return
        hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
        unknown = [name for name in hooks if getattr(self.pm.hook, name).spec is None]
        if unknown:
            self.pm.unregister(plugin)
            known = [name for name in dir(hookspecs) if getattr(getattr(hookspecs, name), "itr_harness_spec", None) is not None]
            self._fail(info, f"hook '{unknown[0]}' is not an itr-harness hook{closest(unknown[0], known)}; hooks: {', '.join(sorted(known))}")
            return
        info.hooks = hooks
        self.plugins[info.name] = info

    def _load_entry_points(self) -> None:
        only, disabled = _env_list("ITR_LOAD_PLUGINS"), _env_list("ITR_DISABLE_PLUGINS") or set()
        for ep in sorted(importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name):
            if (only is not None and ep.name not in only) or ep.name in disabled:
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                version=dist.version if dist is not None else "?",
                source=f"entry point {ep.value}" + (f" ({dist.name})" if dist is not None else ""),
            )
            try:
                plugin = ep.load()
            except Exception as exc:  # a third-party import can raise anything
                self._fail(info, f"import failed: {type(exc).__name__}: {exc}", exc)
                continue
            self._add(plugin, info)

    def _load_directory(self, folder: Path) -> None:
        if not folder.is_dir():
            raise UserError(f"--plugins-dir {folder}: not a directory")
        for path in sorted(folder.glob("*.py")):
            info = PluginInfo(name=path.stem, version="-", source=f"file {path}")
            try:
                module = _import_file(path)
            except Exception as exc:
                self._fail(info, f"import failed: {type(exc).__name__}: {exc}", exc)
                continue
            self._add(module, info)

    def _collect_components(self) -> None:
        """Call every register hook plugin by plugin, so each component knows its plugin and
        a plugin that raises while registering is isolated like one that fails to import."""
        for hook_name, kind in REGISTER_HOOKS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                info = self.plugins[impl.plugin_name]
                if info.error:
                    continue
                added: list[ComponentSpec] = []
                try:
                    impl.function(register=self._registrar(info.name, kind, added))
                except UserError:
                    raise
                except Exception as exc:
                    for spec in added:
                        self.registry.remove(spec)
                    self._fail(info, f"{hook_name} raised {type(exc).__name__}: {exc}", exc)

    def _registrar(self, plugin: str, kind: str | None, added: list[ComponentSpec]):
        def register(name: str, factory: Factory, *, kind: str | None = kind, **meta: Any) -> None:
            if kind in ENCODER_KINDS:
                kind = ENCODER_KINDS[kind]
            if kind is None:
                raise UserError(
                    f"plugin '{plugin}': register_encoders needs kind= one of {', '.join(ENCODER_KINDS)} for '{name}'"
                )
            spec = ComponentSpec(kind=kind, name=name, factory=factory, plugin=plugin, meta=meta)
            self.registry.add(spec)
            added.append(spec)

        return register



class Observers:
    """The observer hooks, typed: every plugin's implementation is called in turn."""

    def __init__(self, hook: Any) -> None:
        self._hook = hook

    def before_job(self, job: Any) -> None:
        """A job is about to train or evaluate."""
        self._hook.before_job(job=job)

    def after_job(self, job: Any, metrics: dict[str, float]) -> None:
        """A job finished with these metrics."""
        self._hook.after_job(job=job, metrics=metrics)

    def on_leaderboard(self, frame: Any) -> None:
        """The leaderboard (a `pandas.DataFrame`) is about to be printed and written."""
        self._hook.on_leaderboard(frame=frame)


def _import_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"itr_plugins_dir.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

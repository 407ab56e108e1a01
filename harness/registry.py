"""Named, lazily built components: what plugins register and what experiments refer to.

A component is a (kind, name) pair with a factory. The factory stays a ``"module:attr"`` string
until the component is first built, so listing components never imports torch. Building validates
the user's options against the factory's keyword defaults (the one place a component's defaults
live) with pydantic, so a typo or a wrong type is reported with the option's name.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from harness.config.roles import BUILT_FROM_DATA, KINDS
from harness.errors import UserError, closest

Factory = Callable[..., Any] | str


def resolve(target: Factory) -> Any:
    """Import a ``"module:attr"`` string; pass anything else through."""
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def _type_hints(factory: Any) -> dict[str, Any]:
    """Resolved annotations of a factory (a class's __init__ or a function); string annotations
    from ``from __future__ import annotations`` are evaluated. Unresolvable ones mean Any."""
    import typing

    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # an annotation naming something the module never imports
        return {}


@dataclass
class ComponentSpec:
    """One registered component: where it came from and how to build it."""

    kind: str
    name: str
    factory: Factory
    plugin: str
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """The factory (or, for methods, the recipe object), importing its module on first use."""
        try:
            return resolve(self.factory)
        except (ImportError, AttributeError) as exc:
            raise UserError(
                f"{self.kind} '{self.name}' from plugin '{self.plugin}': cannot import "
                f"{self.factory!r} ({exc})"
            ) from exc

    def options_schema(self) -> dict[str, inspect.Parameter]:
        """The factory's keyword options (name -> parameter), excluding the build context."""
        params = list(inspect.signature(self.load()).parameters.values())
        if self.kind in BUILT_FROM_DATA:
            params = params[1:]
        return {
            p.name: p
            for p in params
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        }

    def validate_options(self, options: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Check option names and types against the factory signature; return coerced options.

        Raises UserError naming ``where`` (e.g. ``demo.toml: methods.vse++.image_encoder``) and
        the offending option.
        """
        import pydantic

        schema = self.options_schema()
        required = [name for name, p in schema.items() if p.default is inspect.Parameter.empty and name not in options]
        if required:
            raise UserError(f"{where}: {self.kind} '{self.name}' needs the option '{required[0]}'")
        for key in options:
            if key not in schema:
                raise UserError(
                    f"{where}: unknown option '{key}' for {self.kind} '{self.name}'"
                    f"{closest(key, schema)}; it takes: {', '.join(sorted(schema)) or 'no options'}"
                )
        hints = _type_hints(self.load())
        fields = {
            name: (
                hints.get(name, Any),
                ... if p.default is inspect.Parameter.empty else p.default,
            )
            for name, p in schema.items()
            if name in options
        }
        model = pydantic.create_model(f"{self.name}-options", __config__=pydantic.ConfigDict(strict=False), **fields)
        try:
            return dict(model(**options))
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise UserError(
                f"{where}.{key}: {err['msg'].lower()} (got {err.get('input')!r})"
            ) from None

    def build(self, options: Mapping[str, Any], where: str, ctx: Any = None) -> Any:
        """Validate `options` and call the factory: ``factory(ctx, **options)`` for the kinds built
        from data (`BUILT_FROM_DATA`), ``factory(**options)`` for the others."""
        checked = self.validate_options(options, where)
        factory = self.load()
        return factory(ctx, **checked) if self.kind in BUILT_FROM_DATA else factory(**checked)

    def defaults(self) -> dict[str, Any]:
        """The factory's default options, for logging the fully resolved config."""
        return {
            name: p.default
            for name, p in self.options_schema().items()
            if p.default is not inspect.Parameter.empty
        }


class Registry:
    """All registered components, keyed by (kind, name)."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, str], ComponentSpec] = {}
        self.failed_plugins: dict[str, str] = {}
        """Plugin name -> why it did not load: an unknown name may be one of theirs."""

    def add(self, spec: ComponentSpec) -> None:
        if spec.kind not in KINDS:
            raise UserError(
                f"plugin '{spec.plugin}': unknown component kind '{spec.kind}' for '{spec.name}'"
                f"{closest(spec.kind, KINDS)}; kinds are {', '.join(KINDS)}"
            )
        key = (spec.kind, spec.name)
        if key in self._specs:
            first = self._specs[key]
            raise UserError(
                f"{spec.kind} '{spec.name}' is registered twice: by plugin '{first.plugin}' and "
                f"by plugin '{spec.plugin}'; disable one (ITR_DISABLE_PLUGINS=name for an installed plugin, "
                "or take its file out of --plugins-dir)"
            )
        self._specs[key] = spec

    def remove(self, spec: ComponentSpec) -> None:
        self._specs.pop((spec.kind, spec.name), None)

    def get(self, kind: str, name: str) -> ComponentSpec:
        try:
            return self._specs[(kind, name)]
        except KeyError:
            known = self.names(kind)
            failed = "".join(f"; plugin '{plugin}' did not load ({error})" for plugin, error in self.failed_plugins.items())
            raise UserError(
                f"unknown {kind} '{name}'{closest(name, known)}; registered: "
                f"{', '.join(known) or 'none'} (see `itr plugins`){failed}"
            ) from None

    def names(self, kind: str) -> list[str]:
        return sorted(name for (k, name) in self._specs if k == kind)

    def by_plugin(self, plugin: str) -> list[ComponentSpec]:
        return [spec for spec in self._specs.values() if spec.plugin == plugin]

    def __iter__(self) -> Iterator[ComponentSpec]:
        return iter(self._specs.values())

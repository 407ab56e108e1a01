"""Named, lazily built components: what plugins register and what experiments refer to.

A component is a (kind, name) pair with a factory. The factory stays a ``"module:attr"`` string
until the component is first built, so listing components never imports torch. Building validates
the user's options against the factory's keyword defaults (the one place a component's defaults
live) with pydantic, so a typo or a wrong type is reported with the option's name. Numbers and
booleans are strict: TOML and ``--option`` give real ones, so the text ``"0.1"`` for a float is a
mistake to report, not to convert (an int is still a float).
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Iterator, Literal, Mapping, Sequence, Union

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
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # an annotation naming something the module never imports
        return {}


def strict_numbers(hint: Any) -> Any:
    """`hint` with every int, float and bool inside it strict (unions, ``Annotated`` ranges and
    containers included): pydantic then refuses the text ``"0.1"`` instead of converting it, and
    still takes an int for a float. Other types keep their usual conversions (a path from text)."""
    import pydantic

    if hint in (int, float, bool):
        return Annotated[hint, pydantic.Strict()]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is None or origin is Literal or not args:
        return hint
    if origin is Annotated:
        return Annotated[(strict_numbers(args[0]), *hint.__metadata__)]
    strict_args = tuple(strict_numbers(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return Union[strict_args]
    try:
        return origin[strict_args]
    except TypeError:  # a generic that cannot be re-subscripted: keep it as it is
        return hint


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
        except Exception as exc:  # a plugin's module may raise anything while it imports
            raise UserError(
                f"{self.kind} '{self.name}' from plugin '{self.plugin}': cannot import "
                f"{self.factory!r} ({type(exc).__name__}: {exc})"
            ) from exc

    def option_types(self) -> dict[str, Any]:
        """Each option's annotation (``Any`` where the factory gives none)."""
        hints = _type_hints(self.load())
        return {name: hints.get(name, Any) for name in self.options_schema()}

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
        annotations = self.option_types()
        fields = {
            name: (
                strict_numbers(annotations[name]),
                ... if p.default is inspect.Parameter.empty else p.default,
            )
            for name, p in schema.items()
            if name in options
        }
        model = pydantic.create_model(f"{self.name}-options", __config__=pydantic.ConfigDict(strict=False), **fields)
        try:
            checked = dict(model(**options))
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            quoted = isinstance(err.get("input"), str) and err["type"] in TEXT_FOR_NUMBER
            hint = "; write it without quotes" if quoted else ""
            raise UserError(
                f"{where}.{key}: {err['msg'].lower()} (got {err.get('input')!r}){hint}"
            ) from None
        self._check_together({**self.defaults(), **checked}, where)
        return checked

    def _check_together(self, options: Mapping[str, Any], where: str) -> None:
        """The factory's own ``check_options(**options)``, if it has one: the checks that relate
        options to each other or to files (a model folder and the resolution it can read), run
        when a file is planned instead of when the job is built. It raises `UserError`
        ``"<option>: <what is wrong>"``."""
        check = getattr(self.load(), "check_options", None)
        if check is None:
            return
        try:
            check(**options)
        except UserError as exc:
            raise UserError(f"{where}.{exc}") from None

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


TEXT_FOR_NUMBER = frozenset({"float_type", "int_type", "bool_type"})
"""pydantic's error types for text given where a number or a boolean is expected."""


class Registry:
    """All registered components, keyed by (kind, name)."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, str], ComponentSpec] = {}
        self.failed_plugins: dict[str, str] = {}
        """Plugin name -> why it did not load: an unknown name may be one of theirs."""
        self.host_options: dict[str, Any] = {}
        """How the plugin host that filled this registry was made (``strict``, ``plugins_dir``):
        what another process of the same job loads again (a data-parallel job's other ranks)."""

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
            raise UserError(
                f"unknown {kind} '{name}'{closest(name, known)}; registered: "
                f"{', '.join(known) or 'none'} (see `itr plugins`){self.failures_note()}"
            ) from None

    def find(self, target: str, kinds: Sequence[str] = KINDS, where: str = "itr") -> ComponentSpec:
        """The component `target` names among `kinds`: ``name``, or ``kind:name`` (the spelling
        `itr plugins` prints) when a name is taken in two kinds; errors begin with `where`."""
        kind, sep, name = target.partition(":")
        if sep:
            if kind not in kinds:
                raise UserError(f"{where} {target}: unknown kind '{kind}'{closest(kind, kinds)}; kinds: {', '.join(kinds)}")
            try:
                return self.get(kind, name)
            except UserError as exc:
                raise UserError(f"{where}: {exc}") from None
        found = [kind for kind in kinds if (kind, target) in self._specs]
        if len(found) == 1:
            return self.get(found[0], target)
        if found:
            spelled = " or ".join(f"{kind}:{target}" for kind in found)
            raise UserError(f"{where} {target}: the name is taken in {len(found)} kinds; say which: {spelled}")
        known = sorted({name for kind in kinds for name in self.names(kind)})
        raise UserError(
            f"{where}: unknown component or method '{target}'{closest(target, known)} (see `itr plugins`){self.failures_note()}"
        )

    def kinds_of(self, name: str) -> list[str]:
        """The kinds in which `name` is registered, in the order of `KINDS`."""
        return [kind for kind in KINDS if (kind, name) in self._specs]

    def failures_note(self) -> str:
        """``; plugin 'x' did not load (why)`` for every plugin that failed: an unknown name may
        be one of theirs, and the message should say so."""
        return "".join(f"; plugin '{plugin}' did not load ({error})" for plugin, error in self.failed_plugins.items())

    def import_failures(self) -> list[tuple[ComponentSpec, UserError]]:
        """Every component whose lazy factory does not import, with the error (`itr plugins
        --check`: a typo in a ``"module:attr"`` string otherwise waits for the first job)."""
        failures = []
        for spec in self:
            try:
                spec.load()
            except UserError as exc:
                failures.append((spec, exc))
        return failures

    def names(self, kind: str) -> list[str]:
        return sorted(name for (k, name) in self._specs if k == kind)

    def by_plugin(self, plugin: str) -> list[ComponentSpec]:
        return [spec for spec in self._specs.values() if spec.plugin == plugin]

    def __iter__(self) -> Iterator[ComponentSpec]:
        return iter(self._specs.values())

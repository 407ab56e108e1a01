"""What `itr describe NAME` tells a plugin author or a user about one registered component.

For a component: its docstring's summary, every option with its type, default and allowed
values (the ranges and choices of its annotations, `harness.options`), and, for the kinds that
pass embeddings along, what it consumes and produces: global vectors or vector sets (regions,
words). Those come from a head's declaration (`harness.capabilities.DeclaresInputs`), else from
the type hints of ``forward``, where it has them. For a method: its summary, paper and resolved
defaults, every section of the job configuration with each component's defaults filled in, as
the dotted keys an experiment file's method block overrides.

Everything is read from the registry entry, as a job would build it: the factory's signature
(the one place a component's defaults live), so describing a component imports its module.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import annotated_types

from harness.errors import UserError
from harness.registry import ComponentSpec, Registry


@dataclass(frozen=True)
class OptionRow:
    """One option as `itr describe` lists it; `allowed` is empty when anything of `type` goes."""

    name: str
    type: str
    default: str
    allowed: str


@dataclass(frozen=True)
class Description:
    """A component or method, described.

    Attributes:
        spec: the registry entry.
        summary: the first paragraph of its docstring (a method: the recipe's summary).
        options: its options (none for a method: its defaults are `defaults`).
        flow: ("consumes" | "produces", what) lines, where they can be known.
        defaults: a method's resolved configuration as (dotted key, TOML value) pairs.
        paper: a method's reference.
    """

    spec: ComponentSpec
    summary: str
    options: list[OptionRow] = field(default_factory=list)
    flow: list[tuple[str, str]] = field(default_factory=list)
    defaults: list[tuple[str, str]] = field(default_factory=list)
    paper: str = ""

    @property
    def source(self) -> str:
        """Where the factory lives, spelled as a lazy registration is: ``module:attr``."""
        factory = self.spec.factory
        if isinstance(factory, str):
            return factory
        return f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', repr(factory))}"


def describe(registry: Registry, target: str) -> Description:
    """The description of the component or method `target` names (``name`` or ``kind:name``)."""
    spec = registry.find(target, where="itr describe")
    if spec.kind == "method":
        return _describe_method(registry, spec)
    factory = spec.load()
    return Description(spec, _summary(factory), _options(spec), _flow(spec.kind, factory, spec.name))


def _describe_method(registry: Registry, spec: ComponentSpec) -> Description:
    from harness.config.dotted import flatten
    from harness.job.resolve import resolve_method

    recipe = spec.load()
    summary = recipe.summary
    try:
        _, config = resolve_method(registry, spec.name, {}, f"itr describe method:{spec.name}")
        tree = config.model_dump()
    except UserError as exc:  # a required option (a model folder) has no default to resolve with
        tree = dict(recipe.defaults)
        summary += f" (as the recipe gives it: {str(exc).removeprefix(f'itr describe method:{spec.name}.')})"
    defaults = [(key, toml_value(value)) for key, value in flatten(tree)]
    return Description(spec, summary, defaults=defaults, paper=recipe.paper)


def _summary(factory: Any) -> str:
    """The first paragraph of the factory's docstring, on one line."""
    doc = inspect.getdoc(factory) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _options(spec: ComponentSpec) -> list[OptionRow]:
    annotations = spec.option_types()
    rows = []
    for name, parameter in spec.options_schema().items():
        hint = annotations[name]
        default = "(required)" if parameter.default is inspect.Parameter.empty else toml_value(parameter.default)
        rows.append(OptionRow(name, type_name(hint), default, allowed_values(hint)))
    return rows


# -- types and ranges ---------------------------------------------------------------------------


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def type_name(hint: Any) -> str:
    """``float``, ``int | None``, ``str`` (a choice of texts), ``dict[str, str | list[str]]``."""
    if hint is Any:
        return "any"
    if hint is type(None):
        return "None"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(dict.fromkeys(type(value).__name__ for value in args))
    if _is_union(hint):
        return " | ".join(dict.fromkeys(type_name(arg) for arg in args))
    if origin is not None and args:
        inner = ", ".join("..." if arg is Ellipsis else type_name(arg) for arg in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def allowed_values(hint: Any) -> str:
    """The values an annotation admits beyond its type: a range (``[0, 1)``, ``≥ 1``) or the
    choices of a ``Literal``; empty when any value of the type goes."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return " | ".join(toml_value(value) for value in args)
    if origin is typing.Annotated:
        return " and ".join(part for part in (allowed_values(args[0]), _range(hint.__metadata__)) if part)
    if _is_union(hint):
        return " or ".join(part for part in (allowed_values(arg) for arg in args) if part)
    return ""


def _constraints(metadata: Any) -> list[Any]:
    """annotated_types constraints, with intervals and pydantic ``Field`` metadata expanded."""
    found = []
    for item in metadata:
        if isinstance(item, annotated_types.GroupedMetadata):
            found += _constraints(list(item))
        elif hasattr(item, "metadata") and isinstance(item.metadata, list):  # pydantic FieldInfo
            found += _constraints(item.metadata)
        else:
            found.append(item)
    return found


def _range(metadata: Any) -> str:
    lower = upper = None
    extra = []
    for item in _constraints(metadata):
        if isinstance(item, annotated_types.Ge):
            lower = ("[", "≥", item.ge)
        elif isinstance(item, annotated_types.Gt):
            lower = ("(", ">", item.gt)
        elif isinstance(item, annotated_types.Le):
            upper = ("]", "≤", item.le)
        elif isinstance(item, annotated_types.Lt):
            upper = (")", "<", item.lt)
        elif isinstance(item, annotated_types.MultipleOf):
            extra.append(f"multiple of {item.multiple_of}")
        elif isinstance(item, annotated_types.MinLen):
            extra.append(f"at least {item.min_length} long")
        elif isinstance(item, annotated_types.MaxLen):
            extra.append(f"at most {item.max_length} long")
    if lower and upper:
        bounds = [f"{lower[0]}{lower[2]}, {upper[2]}{upper[0]}"]
    else:
        bounds = [f"{bound[1]} {bound[2]}" for bound in (lower, upper) if bound]
    return ", ".join(bounds + extra)


def toml_value(value: Any) -> str:
    """A value as an experiment file writes it (``"gpo"``, ``0.2``, ``true``, ``[{ name = "x" }]``);
    None, which TOML cannot write, as ``none``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(key)} = {toml_value(item)}" for key, item in value.items())
        return "{ " + items + " }" if items else "{}"
    return json.dumps(str(value))


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


# -- what flows in and out ----------------------------------------------------------------------

EMBEDDINGS = {"Tensor": "global vectors [n, D]", "VectorSets": "vector sets (VectorSets [n, N_max, D] + lengths)"}
"""How the two kinds of embeddings read, by the name of the class a type hint names."""


def _flow(kind: str, factory: Any, name: str) -> list[tuple[str, str]]:
    """(consumes | produces, what) for the kinds that pass embeddings along."""
    if kind in ("image-encoder", "text-encoder"):
        consumes = "captions, prepared once per split"
        if kind == "image-encoder":
            reads_pixels = "pixels" in getattr(factory, "__annotations__", {})  # `ReadsPixels`, declared in the class body
            consumes = 'pixels {"pixels": [B, 3, S, S]}, decoded and augmented by the harness' if reads_pixels else "image features {name: [B, ...]}"
        return [("consumes", consumes), ("produces", _produced(factory))]
    if kind == "similarity-head":
        return [("consumes", _scored(factory, name)), ("produces", "scores [n_images, n_captions]")]
    if kind == "sample-generator":
        if getattr(factory, "level", None) == "text":
            return [("consumes", "captions and their image's other captions"), ("produces", "one positive caption per caption")]
        if getattr(factory, "level", None) == "feature":
            return [("consumes", "caption embeddings: global vectors or vector sets"),
                    ("produces", "one negative per caption, of the same kind and size")]
    if kind == "loss":
        return [("consumes", "scores [B, B + G] (G generated negative columns) and image_ids [B]"), ("produces", "a scalar")]
    return []


def _produced(factory: Any) -> str:
    hinted = _embedding_kinds(_forward_hints(factory).get("return"))
    return " or ".join(hinted) if hinted else "global vectors [B, D] or vector sets (forward's return type not given)"


def _scored(factory: Any, name: str) -> str:
    from harness.capabilities import HEAD_INPUTS, declared_inputs

    declared = declared_inputs(factory, f"similarity-head '{name}'")
    if declared:
        return "; ".join(HEAD_INPUTS[kind] for kind in declared) + " (declared: accepts)"
    hints = _forward_hints(factory)
    images = next((hint for key, hint in hints.items() if key != "return"), None)
    hinted = _embedding_kinds(images)
    if hinted:
        return " or ".join(hinted) + " (forward's type hints; declare accepts to be checked on each)"
    return "not declared (declare accepts, e.g. (\"vectors\", \"sets\"))"


def _forward_hints(factory: Any) -> dict[str, Any]:
    forward = getattr(factory, "forward", None) if inspect.isclass(factory) else None
    if forward is None:
        return {}
    try:
        return typing.get_type_hints(forward)
    except Exception:  # a hint naming something the module does not import
        return {}


def _embedding_kinds(hint: Any) -> list[str]:
    """The embedding kinds a type hint names: a Tensor, `VectorSets`, or a union of them."""
    members = typing.get_args(hint) if _is_union(hint) else (hint,)
    names = [getattr(member, "__name__", "") for member in members]
    return [EMBEDDINGS[name] for name in EMBEDDINGS if name in names]

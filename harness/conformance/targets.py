"""From `itr check TARGET --option k=v` to a report: find the target, validate its options,
run the checks of its kind.

TARGET is a component or method name, or ``kind:name`` (the spelling `itr plugins` prints)
when a name is taken in two kinds (``text-encoder:vse-inf-bigru`` vs ``method:vse-inf-bigru``).
A bad target or option is a `UserError` (exit code 2); a component that breaks the contract is
a failed check (exit code 1).
"""

from __future__ import annotations

from typing import Any, Mapping

from harness.config.dotted import nest
from harness.config.roles import CHECKED_KINDS, KINDS
from harness.conformance.report import Report
from harness.errors import UserError, closest
from harness.registry import ComponentSpec, Registry

def find_target(registry: Registry, target: str) -> ComponentSpec:
    """The registered component or method `target` names (``name`` or ``kind:name``)."""
    kind, sep, name = target.partition(":")
    if sep:
        if kind not in KINDS:
            raise UserError(f"itr check {target}: unknown kind '{kind}'{closest(kind, KINDS)}; kinds: {', '.join(CHECKED_KINDS)}")
        if kind not in CHECKED_KINDS:
            raise UserError(f"itr check {target}: {kind}s have no contract checks; checked kinds: {', '.join(CHECKED_KINDS)}")
        return registry.get(kind, name)
    matches = [registry.get(kind, target) for kind in CHECKED_KINDS if target in registry.names(kind)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        spelled = " or ".join(f"{spec.kind}:{spec.name}" for spec in matches)
        raise UserError(f"itr check {target}: the name is taken in {len(matches)} kinds; say which: {spelled}")
    elsewhere = [kind for kind in KINDS if target in registry.names(kind)]
    if elsewhere:
        raise UserError(f"itr check {target}: a {elsewhere[0]} has no contract checks; checked kinds: {', '.join(CHECKED_KINDS)}")
    known = sorted({name for kind in CHECKED_KINDS for name in registry.names(kind)})
    raise UserError(f"itr check: unknown component or method '{target}'{closest(target, known)} (see `itr plugins`)")


def run_checks(registry: Registry, target: str, options: Mapping[str, Any] | None = None, *, seed: int = 0) -> Report:
    """Run every contract check of `target` with `options` and return the report.

    Options of a component are its factory's keywords (``embed_dim=32``); options of a method
    are overrides of its recipe, dotted like an experiment file's keys
    (``similarity_head.global_pooling="ground-truth-partner"``).
    """
    spec = find_target(registry, target)
    options = dict(options or {})
    report = Report(f"{spec.kind}:{spec.name}")
    if spec.kind == "method":
        from harness.conformance.methods import MethodChecks

        report.extend(MethodChecks(registry, spec, nest(options), seed).run())
        return report
    from harness.conformance.subject import Subject
    from harness.conformance.synthetic import SyntheticData

    options = spec.validate_options(options, f"itr check {report.target}")
    subject = Subject(spec, options, SyntheticData(seed=seed), seed)
    report.extend(_checks_of(spec.kind)(subject).run())
    return report


def _checks_of(kind: str) -> Any:
    """The checks class of a component kind (imported on demand: they import torch)."""
    if kind in ("image-encoder", "text-encoder"):
        from harness.conformance.encoders import EncoderChecks

        return EncoderChecks
    if kind == "similarity-head":
        from harness.conformance.heads import HeadChecks

        return HeadChecks
    if kind == "loss":
        from harness.conformance.losses import LossChecks

        return LossChecks
    if kind == "sample-generator":
        from harness.conformance.generators import GeneratorChecks

        return GeneratorChecks
    if kind == "text-source":
        from harness.conformance.texts import TextSourceChecks

        return TextSourceChecks
    from harness.conformance.backbones import BackboneChecks

    return BackboneChecks

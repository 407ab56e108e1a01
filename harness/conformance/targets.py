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
from harness.errors import UserError
from harness.registry import ComponentSpec, Registry


def find_target(registry: Registry, target: str) -> ComponentSpec:
    """The registered component or method `target` names (``name`` or ``kind:name``)."""
    kind, sep, _ = target.partition(":")
    unchecked = [kind] if sep else registry.kinds_of(target)
    if unchecked and all(kind in KINDS and kind not in CHECKED_KINDS for kind in unchecked):
        raise UserError(f"itr check {target}: a {unchecked[0]} has no contract checks; checked kinds: {', '.join(CHECKED_KINDS)}")
    return registry.find(target, CHECKED_KINDS, "itr check")


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

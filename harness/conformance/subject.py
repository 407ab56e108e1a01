"""The component under test and the checks every kind shares: seeded builds, determinism,
finite gradients, checkpoint round trip, device placement.

A kind's checks (`encoders`, `heads`, `losses`, ...) subclass `ComponentChecks` and list their
checks in order; ``interface`` runs first, and when it fails the rest are skipped (they would
only fail again for the same reason).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from harness.conformance.compare import require_close, require_finite, require_same_items
from harness.conformance.report import SKIP, CheckFailed, CheckResult, CheckSkipped, run_check
from harness.conformance.synthetic import SyntheticData
from harness.embeddings import Embeddings, VectorSets
from harness.registry import ComponentSpec
from harness.training.trainer import seed_everything

Outputs = Mapping[str, Any]
"""Named outputs of one run of a component (embeddings, score matrices, losses)."""


@dataclass
class Subject:
    """A registered component with the options it is checked with.

    Attributes:
        spec: the registry entry.
        options: the component's options (validated when built).
        data: the synthetic inputs.
        seed: the seed of every build; the checkpoint check builds its target with seed + 1.
    """

    spec: ComponentSpec
    options: Mapping[str, Any] = field(default_factory=dict)
    data: SyntheticData = field(default_factory=SyntheticData)
    seed: int = 0

    @property
    def title(self) -> str:
        return f"{self.spec.kind}:{self.spec.name}"

    def build(self, seed: int | None = None) -> Any:
        """Seed Python, NumPy and torch as a job does, then call the factory."""
        seed = self.seed if seed is None else seed
        seed_everything(seed)
        return self.spec.build(self.options, f"itr check {self.title}", self.data.context(seed))


def devices() -> list[torch.device]:
    """The devices to run on: the CPU, plus CUDA when present."""
    found = [torch.device("cpu")]
    if torch.cuda.is_available():
        found.append(torch.device("cuda"))
    return found


def require_module(component: Any) -> nn.Module:
    if not isinstance(component, nn.Module):
        raise CheckFailed(
            f"the factory returned {type(component).__name__}, not a torch.nn.Module "
            "(the trainer moves, trains and checkpoints components as modules)"
        )
    return component


def require_on(embeddings: Embeddings, device: torch.device, what: str) -> None:
    tensors = [embeddings] if isinstance(embeddings, torch.Tensor) else [embeddings.vectors, embeddings.lengths]
    for tensor in tensors:
        if tensor.device.type != device.type:
            raise CheckFailed(f"{what}: output on {tensor.device} for inputs on {device}")


def require_same_outputs(second: Outputs, first: Outputs, what: str) -> None:
    """Every named output of two runs agrees."""
    for key, value in first.items():
        other = second[key]
        if isinstance(value, (torch.Tensor, VectorSets)):
            require_same_items(other, value, f"{what}, {key}")
        elif value != other:
            raise CheckFailed(f"{what}, {key}: {other!r} instead of {value!r}")


def require_same_state(second: nn.Module, first: nn.Module, what: str) -> None:
    """Two modules hold the same parameters and buffers."""
    a, b = first.state_dict(), second.state_dict()
    if set(a) != set(b):
        raise CheckFailed(f"{what}: different state entries ({sorted(set(a) ^ set(b))[:3]})")
    for name, value in a.items():
        if torch.equal(b[name], value):
            continue
        if value.is_floating_point():
            require_close(b[name], value, f"{what}: '{name}'")
        elif not torch.equal(b[name], value):
            raise CheckFailed(f"{what}: '{name}' differs")


def determinism(subject: Subject, run: Callable[[Any], Outputs], first: Any = None) -> str:
    """Two builds under the same seed hold the same state and give the same outputs, in
    evaluation and in training mode (`run` seeds torch before any training-mode forward).

    `first` is a build made earlier under the same seed and used in evaluation mode only."""
    first_module = subject.build() if first is None else first
    second_module = subject.build()
    if isinstance(first_module, nn.Module):
        require_same_state(second_module, first_module, f"two builds with seed {subject.seed}")
    require_same_outputs(run(second_module), run(first_module), f"two runs with seed {subject.seed}")
    return f"same state and outputs under seed {subject.seed}"


def trainable_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in module.named_parameters() if p.requires_grad]


def gradients(module: nn.Module, loss: Callable[[nn.Module], torch.Tensor]) -> str:
    """Backpropagate `loss(module)` (training mode): every trainable parameter gets a finite
    gradient. A parameter nothing reaches would sit in the optimiser and never learn."""
    module.train()
    module.zero_grad(set_to_none=True)
    value = loss(module)
    require_finite(value.detach(), "the check's loss")
    if not value.requires_grad:
        if trainable_parameters(module):
            raise CheckFailed("the output does not depend on any trainable parameter (no autograd graph)")
        return "no trainable parameters"
    value.backward()
    params = trainable_parameters(module)
    missing = [name for name, p in params if p.grad is None]
    if missing:
        raise CheckFailed(
            f"no gradient reaches {len(missing)} of {len(params)} trainable parameters ({', '.join(missing[:3])}); "
            "use them or freeze them with requires_grad_(False)"
        )
    broken = [name for name, p in params if not bool(torch.isfinite(p.grad).all())]
    if broken:
        raise CheckFailed(f"NaN or infinite gradients in {', '.join(broken[:3])}")
    return f"{len(params)} trainable tensors, all gradients finite" if params else "no trainable parameters"


def checkpoint_round_trip(subject: Subject, original: Any, run: Callable[[Any], Outputs]) -> str:
    """Save the state as the harness does (safetensors), load it into a build with another seed,
    and get the same outputs (`run` in evaluation mode)."""
    from safetensors.torch import save_model

    from harness.job import checkpoints

    if not isinstance(original, nn.Module) or not original.state_dict():
        raise CheckSkipped("no parameters or buffers to save")
    expected = run(original)
    with tempfile.TemporaryDirectory() as folder:
        save_model(original, str(Path(folder) / checkpoints.WEIGHTS))
        restored = subject.build(seed=subject.seed + 1)
        checkpoints.load_weights(restored, Path(folder))
    require_same_outputs(run(restored), expected, "after save and load")
    return f"{len(original.state_dict())} tensors through safetensors, same outputs"


class ComponentChecks:
    """The checks of one kind of component, run in the order of `CHECKS`.

    Subclasses define ``CHECKS = (("interface", "interface"), ("determinism", "determinism"), ...)``
    as (check name, method name) pairs; each method returns an optional note or raises.
    """

    CHECKS: tuple[tuple[str, str], ...] = ()

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        self._primary: Any = None

    @property
    def title(self) -> str:
        """What the report's component column names: ``kind:name``."""
        return self.subject.title

    @property
    def primary(self) -> Any:
        """The component built once under the subject's seed (used in evaluation mode only)."""
        if self._primary is None:
            self._primary = self.subject.build()
        return self._primary

    def run(self) -> list[CheckResult]:
        results: list[CheckResult] = []
        for name, method in self.CHECKS:
            if results and results[0].failed:
                results.append(CheckResult(self.title, name, SKIP, "not run: the interface check failed"))
                continue
            results.append(run_check(self.title, name, getattr(self, method)))
        return results

"""Check results: one row per (component, check), rendered as the table `itr check` prints.

A check is a function that returns normally (pass, optionally with a note), raises `CheckFailed`
(fail, with the reason) or `CheckSkipped` (the check does not apply, e.g. nothing to save). Any
other exception is a failure too: a component that crashes on a tiny batch does not conform.
Nothing here imports torch, so the pytest plugin that re-exports it costs nothing to load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

PASS, FAIL, SKIP = "pass", "FAIL", "skip"


class CheckFailed(Exception):
    """The component breaks the contract; the message says how (one line)."""


class CheckSkipped(Exception):
    """The check does not apply to this component; the message says why."""


@dataclass(frozen=True)
class CheckResult:
    """One row of the table.

    Attributes:
        component: ``kind:name``, e.g. ``similarity-head:ascl-fusion``.
        check: the check's name, e.g. ``leakage/batch-order``.
        status: ``pass``, ``FAIL`` or ``skip``.
        reason: why it failed or was skipped; for a pass, an optional note (what was checked).
    """

    component: str
    check: str
    status: str
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def one_line(exc: BaseException) -> str:
    """``TypeError: message`` on one line (the first line of the message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_check(component: str, check: str, function: Callable[..., str | None], *args: Any) -> CheckResult:
    """Run one check function and turn its outcome into a row."""
    try:
        note = function(*args)
    except CheckFailed as exc:
        return CheckResult(component, check, FAIL, str(exc))
    except CheckSkipped as exc:
        return CheckResult(component, check, SKIP, str(exc))
    except Exception as exc:  # a crash on a tiny synthetic batch is a contract failure
        return CheckResult(component, check, FAIL, f"raised {one_line(exc)}")
    return CheckResult(component, check, PASS, note or "")


@dataclass
class Report:
    """The results of one `itr check` target, in the order they ran."""

    target: str
    results: list[CheckResult] = field(default_factory=list)

    def add(self, result: CheckResult) -> None:
        self.results.append(result)

    def extend(self, results: "Report | list[CheckResult]") -> None:
        self.results.extend(results.results if isinstance(results, Report) else results)

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        """0 when every check passed (or was skipped), 1 when one failed."""
        return 0 if self.ok else 1

    def get(self, check: str, component: str | None = None) -> CheckResult:
        """The row of `check` (of `component`, when the report covers several)."""
        for result in self.results:
            if result.check == check and (component is None or result.component == component):
                return result
        raise KeyError(f"no check {check!r}" + (f" for {component}" if component else "") + f" in the report on {self.target}")

    def summary(self) -> str:
        counts = {status: sum(r.status == status for r in self.results) for status in (PASS, FAIL, SKIP)}
        return (
            f"{self.target}: {len(self.results)} checks, {counts[PASS]} passed, "
            f"{counts[FAIL]} failed, {counts[SKIP]} skipped"
        )

    def table(self) -> str:
        from tabulate import tabulate

        rows = [[r.component, r.check, r.status, r.reason] for r in self.results]
        return tabulate(rows, headers=["component", "check", "result", "reason"], tablefmt="simple")

    def assert_ok(self) -> None:
        """Raise AssertionError with the table when a check failed (for plugin test suites)."""
        if not self.ok:
            failures = "\n".join(f"  {r.component} {r.check}: {r.reason}" for r in self.failed)
            raise AssertionError(f"{self.summary()}\n{failures}\n\n{self.table()}")

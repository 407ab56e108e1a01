"""The figure the damaged-data tests produce: distinct damaged inputs tried, and how many were
refused with a one-line error naming the file and the position (`damage.TALLY`)."""

from __future__ import annotations

from tests.baselines.datasets.damage import TALLY


def pytest_terminal_summary(terminalreporter) -> None:
    if TALLY.tried:
        terminalreporter.write_line(
            f"damaged inputs: {len(TALLY.tried)} distinct tried, {len(TALLY.one_line)} refused with a "
            "one-line error naming the file and the position"
        )

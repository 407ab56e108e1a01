"""Progress of long work: a line per finished unit in a log, nothing on a terminal or when quiet."""

from __future__ import annotations

import io

import pytest

from harness import progress
from harness.progress import ProgressLog, duration


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def not_quiet(monkeypatch):
    """Each test starts unsilenced, and what `silence()` sets is undone after it."""
    monkeypatch.setenv(progress.QUIET_VARIABLE, "")


def test_a_log_gets_a_line_per_unit_with_elapsed_and_the_eta_of_the_rest(monkeypatch):
    log_file, clock = io.StringIO(), Clock()
    monkeypatch.setattr("sys.stderr", log_file)
    log = ProgressLog("coco:train image features", 4, "shard", clock=clock)
    clock.now += 30
    log.advance("2048 images")
    clock.now += 30
    log.advance()
    assert log_file.getvalue().splitlines() == [
        "coco:train image features: shard 1/4, 2048 images, elapsed 30s, eta 1m30s",
        "coco:train image features: shard 2/4, elapsed 1m00s, eta 1m00s",
    ]


def test_a_terminal_gets_no_lines_its_bars_show_progress(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    ProgressLog("training", 2, "epoch").advance("loss 1.0")
    assert terminal.getvalue() == ""


def test_a_bar_draws_on_a_terminal():
    terminal = Terminal()
    assert list(progress.bar(range(3), desc="shards", file=terminal)) == [0, 1, 2]
    assert "shards: 100%" in terminal.getvalue() and "3/3" in terminal.getvalue()


def test_a_disabled_bar_stays_off_on_a_terminal():
    terminal = Terminal()
    assert list(progress.bar(range(1), disable=True, file=terminal)) == [0]
    assert terminal.getvalue() == ""


def test_quiet_silences_the_lines_and_the_bars(monkeypatch):
    log_file, terminal = io.StringIO(), Terminal()
    monkeypatch.setattr("sys.stderr", log_file)
    progress.silence()
    assert progress.is_quiet()
    ProgressLog("training", 2, "epoch").advance("loss 1.0")
    assert log_file.getvalue() == ""
    assert list(progress.bar(range(3), file=terminal)) == [0, 1, 2]
    assert terminal.getvalue() == ""


@pytest.mark.parametrize(
    "value, quiet", [("1", True), ("yes", True), ("0", False), ("", False)]
)
def test_itr_quiet_is_read_from_the_environment(monkeypatch, value, quiet):
    monkeypatch.setenv(progress.QUIET_VARIABLE, value)
    assert progress.is_quiet() is quiet


@pytest.mark.parametrize(
    "seconds, said", [(0.4, "0s"), (59.6, "1m00s"), (725, "12m05s"), (7505, "2h05m")]
)
def test_durations_read_as_seconds_minutes_or_hours(seconds, said):
    assert duration(seconds) == said

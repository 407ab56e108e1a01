"""Progress of long work: tqdm bars on a terminal, one line per finished unit in a log.

A bar redraws itself on a terminal but writes nothing useful to a file, so when stderr is not a
terminal (CI, Slurm, Ray, ``nohup``) the bars are off and long work prints a line per epoch or
shard instead, with elapsed time and an ETA. ``--quiet`` (or ``ITR_QUIET=1``) turns off both.
The switch is an environment variable so that worker processes started by the driver inherit it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from tqdm.auto import tqdm

QUIET_VARIABLE = "ITR_QUIET"


def silence() -> None:
    """No bars and no progress lines, in this process and in the workers it starts (``--quiet``)."""
    os.environ[QUIET_VARIABLE] = "1"


def is_quiet() -> bool:
    """Whether ``--quiet`` or ``ITR_QUIET`` (any value but empty or 0) turned progress off."""
    return os.environ.get(QUIET_VARIABLE, "") not in ("", "0")


def bar(
    iterable: Iterable | None = None, *, disable: bool = False, **options: Any
) -> tqdm:
    """A tqdm bar (tqdm's arguments) that shows on a terminal only, never with --quiet.

    ``disable=True`` hides it in any case (e.g. a split of one shard); unlike tqdm's
    ``disable=False``, nothing forces a bar into a log.
    """
    return tqdm(iterable, disable=True if disable or is_quiet() else None, **options)


class ProgressLog:
    """Counts the finished units of one long task and, when stderr is a log, prints a line for
    each: ``training: epoch 3/15, stage main 3/10, loss 0.4123, lr 2.00e-04, elapsed 12s, eta 48s``.

    The ETA assumes the units left take as long as the mean unit so far. On a terminal (where a
    bar shows the same) and with --quiet it prints nothing.
    """

    def __init__(
        self,
        task: str,
        total: int,
        unit: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.task, self.total, self.unit, self.clock = task, total, unit, clock
        self.stream: TextIO = sys.stderr
        self.enabled = not is_quiet() and not _is_terminal(self.stream)
        self.finished = 0
        self.start = clock()

    def advance(self, detail: str = "") -> None:
        """One more unit finished; `detail` (e.g. its loss) goes after the count."""
        self.finished += 1
        if not self.enabled:
            return
        elapsed = self.clock() - self.start
        eta = elapsed / self.finished * max(self.total - self.finished, 0)
        parts = [
            f"{self.unit} {self.finished}/{self.total}",
            *([detail] if detail else []),
            f"elapsed {duration(elapsed)}",
            f"eta {duration(eta)}",
        ]
        print(f"{self.task}: {', '.join(parts)}", file=self.stream, flush=True)


def duration(seconds: float) -> str:
    """A duration as a log reader says it: ``45s``, ``12m03s``, ``2h05m``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())

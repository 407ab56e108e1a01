"""SIGTERM stops the harness as Ctrl-C does: every open run is closed KILLED on the way out.

A cluster preempting a job (Slurm, Kubernetes) sends SIGTERM and, after a grace period, SIGKILL.
Python's default for SIGTERM is to die on the spot, leaving the experiment's and the job's MLflow
runs RUNNING until the next invocation notices. Inside `sigterm_stops` the signal raises
`Terminated` instead, a `KeyboardInterrupt`, so the code that closes runs on Ctrl-C closes them
KILLED now, and writes in progress are abandoned through their staging files (`harness.atomic`).
The job's last resume point stays, and the next `itr run` goes on from it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

EXIT_TERMINATED = 128 + signal.SIGTERM
"""The exit status of a process stopped by SIGTERM, as a shell reports it (143)."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


@contextmanager
def sigterm_stops() -> Iterator[None]:
    """While the body runs (in the main thread; elsewhere Python cannot take signals), SIGTERM
    raises `Terminated`. A second SIGTERM is ignored, so that closing the runs finishes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""The default executor: one job after another in the driver's process."""

from __future__ import annotations

from typing import Sequence

from harness.executors.tickets import JobTicket, Session


class InProcess:
    """Runs the jobs sequentially in this process, sharing loaded datasets and backbones
    between jobs: the fastest choice on one machine with one device."""

    def run(self, tickets: Sequence[JobTicket], session: Session) -> None:
        for ticket in tickets:
            session.started(ticket)
            session.finished(ticket, session.run_here(ticket))

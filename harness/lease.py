"""Liveness leases: which RUNNING runs still have a live process behind them, and claiming a cell.

Several drivers may share one store (two people on one MLflow server running the same grid, or
a second `itr run` started while the first still runs). A run's process proves it is alive by a
heartbeat: the tag ``itr.heartbeat`` (unix seconds), rewritten every lease/3 seconds by a daemon
thread (`beating`), beside ``itr.holder`` = ``host:pid:nonce``. A RUNNING run is *live* while its
last heartbeat (for runs of older versions without one: its start time) is younger than the
lease, ``$ITR_LEASE_SECONDS`` (default 180 s: longer than the tracking retry bound, so a run
whose heartbeats waited out a short outage is not taken for dead). On the holder's own host the
lease ends at once when its process is gone (no process with that pid), so a run killed on this
machine is picked up by the next `itr run` without waiting. Hosts are assumed to agree on the
time to well within the lease.

Claiming a cell (`claim_cell`). MLflow offers no compare-and-swap, only writes that become
visible in some order and searches that see every write made visible before them. A driver
about to run a cell first makes its job run visible as a *tentative* claim (``itr.claim``), then
searches the cell's runs:

- a FINISHED run of the cell (unless the user asked to rerun finished cells), or a live run whose
  claim is *held*: the cell is someone else's; the new run is deleted and `CellHeld` raised;
- no other live claim at all: the claim becomes *held*, and the job runs (the cell's runs whose
  lease expired are closed as KILLED: it takes over from them);
- only other tentative claims (drivers claiming at the same moment): the claim is *withdrawn*,
  and tried again after a random pause; after `CLAIM_ATTEMPTS` tries the cell counts as held by
  the other claimant (the driver waits for it, and runs it if that claim comes to nothing).

At most one driver holds a cell: if A and B both held it, each search saw no other claim in
force. Say A's search came first. A's claim was visible before A's search, so before B's
claim was, so before B's search, and A never withdraws a claim it won: B's search saw it and B
did not win. Nor is a cell finished by one driver run again by a second that planned before it
finished: the second sees the FINISHED run when it claims. Only a lease that ends while its
process still lives (a process stopped longer than the lease, clocks far apart) lets a cell run
twice.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator

LEASE_VARIABLE = "ITR_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 180.0
HEARTBEAT_TAG, HOLDER_TAG, CLAIM_TAG = "itr.heartbeat", "itr.holder", "itr.claim"
TENTATIVE, HELD, WITHDRAWN = "tentative", "held", "withdrawn"
CLAIM_ATTEMPTS = 8


class CellHeld(Exception):
    """Another driver holds (or finished) this cell: run `run_id`."""

    def __init__(self, run_id: str, finished: bool) -> None:
        super().__init__(f"{'finished' if finished else 'claimed'} by another driver in run {run_id}")
        self.run_id, self.finished = run_id, finished


def lease_seconds() -> float:
    """The lease, ``$ITR_LEASE_SECONDS`` (seconds, > 0) or 180."""
    from harness.tracking_retry import seconds_from_environment

    return seconds_from_environment(LEASE_VARIABLE, DEFAULT_LEASE_SECONDS, zero_allowed=False)


@lru_cache(maxsize=None)
def _holder(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}"


def holder_id() -> str:
    """This process as a lease holder: ``host:pid:nonce`` (the nonce tells apart two processes
    that got the same pid on one host)."""
    return _holder(os.getpid())


def lease_tags() -> dict[str, str]:
    """The tags a new run starts its lease with."""
    return {HOLDER_TAG: holder_id(), HEARTBEAT_TAG: f"{time.time():.3f}"}


def is_live(run: Any) -> bool:
    """Whether a RUNNING run's lease holds: its process beats, or may still (see the module)."""
    tags = run.data.tags
    host, _, rest = tags.get(HOLDER_TAG, "").partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit() and not _process_exists(int(pid)):
        return False
    beat = tags.get(HEARTBEAT_TAG)
    last = float(beat) if beat else run.info.start_time / 1000
    return time.time() - last < lease_seconds()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextmanager
def beating(client: Any, run_id: str) -> Iterator[None]:
    """While the body runs, renew `run_id`'s lease every lease/3 s from a daemon thread.

    `client` is a plain MLflow client: a beat that fails (store away) is dropped, and the next
    one tries again; a lease that lapses while the store is away is what lets another driver
    take the run's cell over when this process cannot log any more.
    """
    stop = threading.Event()
    interval = lease_seconds() / 3

    def beat() -> None:
        while not stop.wait(interval):
            try:
                client.set_tag(run_id, HEARTBEAT_TAG, f"{time.time():.3f}")
            except Exception:  # noqa: BLE001 (the store is away: the next beat tries again)
                continue

    thread = threading.Thread(target=beat, name=f"itr-lease-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval)


def claim_cell(client: Any, experiment_id: str, run_id: str, config_hash: str, count_finished: bool) -> list[str]:
    """Turn job run `run_id` (created with ``itr.claim = tentative``) into the cell's held claim,
    or delete it and raise `CellHeld` (the protocol is in the module docstring). Returns the
    cell's RUNNING runs whose lease expired: the claim takes over from them."""
    for attempt in range(CLAIM_ATTEMPTS):
        others = [run for run in cell_runs(client, experiment_id, config_hash) if run.info.run_id != run_id]
        finished = [run for run in others if run.info.status == "FINISHED"] if count_finished else []
        live = [run for run in others if run.info.status == "RUNNING" and run.data.tags.get(CLAIM_TAG) != WITHDRAWN and is_live(run)]
        held = finished or [run for run in live if run.data.tags.get(CLAIM_TAG, HELD) == HELD]
        if held:
            client.delete_run(run_id)
            raise CellHeld(held[0].info.run_id, finished=bool(finished))
        if not live:
            client.set_tag(run_id, CLAIM_TAG, HELD)
            return [run.info.run_id for run in others if run.info.status == "RUNNING" and not is_live(run)]
        if attempt == CLAIM_ATTEMPTS - 1:
            client.delete_run(run_id)
            raise CellHeld(min(live, key=lambda run: (run.info.start_time, run.info.run_id)).info.run_id, finished=False)
        client.set_tag(run_id, CLAIM_TAG, WITHDRAWN)
        time.sleep(random.uniform(0.05, 0.5) * (attempt + 1))
        client.set_tag(run_id, CLAIM_TAG, TENTATIVE)


def cell_runs(client: Any, experiment_id: str, config_hash: str) -> list[Any]:
    """The job runs (not deleted) of one cell of an experiment, any status."""
    return list(
        client.search_runs(
            [experiment_id],
            filter_string=f"tags.`itr.kind` = 'job' and tags.`itr.config_hash` = '{config_hash}'",
            max_results=1000,
        )
    )

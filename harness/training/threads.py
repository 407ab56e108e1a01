"""How many threads a job's torch uses: its share of the cores, less its image loader workers.

A job's thread budget is the cores this process may use (its affinity mask, e.g. a Slurm
allocation) divided by the jobs that run at once, unless an executor's ``threads`` option says
otherwise. The executors apply it: local workers through ``OMP_NUM_THREADS`` /
``MKL_NUM_THREADS`` (read when torch starts in the worker), the in-process executor with
`torch.set_num_threads` around each job. While a pixel feed's `DataLoader` workers decode
images (``train.loader_workers``, ``eval.loader_workers``; each worker runs torch with one
thread) the job's torch gives them their cores: max(1, budget − workers) threads, the budget
restored when the feed is done. Thread counts change float rounding only (the order of a
reduction's partial sums), never which operations run.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, e.g. a Slurm allocation)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def job_threads(concurrent_jobs: int, threads: int | None = None) -> int:
    """torch threads of each of `concurrent_jobs` jobs sharing this machine: `threads` when an
    executor option sets it, else the usable cores split evenly (at least 1)."""
    return threads if threads is not None else max(1, usable_cpus() // concurrent_jobs)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to `count` inside, the previous count restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def beside_loader_workers(workers: int) -> int:
    """torch threads of a job while `workers` loader processes decode its images: the rest of
    its budget (the current count), at least 1."""
    return max(1, torch.get_num_threads() - workers) if workers else torch.get_num_threads()

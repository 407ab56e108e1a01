"""Threads: each executor gives a job its share of the cores as torch threads, a pixel feed's
loader workers take theirs out of it, and a job's result moves by float rounding only with the
executor and the thread count."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.executors.in_process import InProcess
from harness.executors.tickets import JobOutcome
from harness.interfaces import PixelSpec
from harness.tracking import download_checkpoint
from harness.training.feeds import PixelFeed
from harness.training.threads import torch_threads
from tests.harness.executors.test_executors import ticket
from tests.helpers import itr_in_process, search_runs, store_uri, tiny_vse_experiment, write_experiment

DEMO_IMAGES = sorted((Path(__file__).resolve().parents[3] / "baselines" / "datasets" / "coco_demo" / "images").glob("*.jpg"))
THREADS_SEEN = "ITR_TEST_THREADS_SEEN"

THREAD_RECORDING_HEAD = f'''
import os

import torch
from torch import nn

from harness.hookspecs import hookimpl


class ThreadRecordingCosine(nn.Module):
    """Cosine scores; appends torch's thread count at each call to the file ${THREADS_SEEN}."""

    def __init__(self, ctx):
        super().__init__()

    def forward(self, images, texts):
        with open(os.environ["{THREADS_SEEN}"], "a") as seen:
            seen.write(f"{{torch.get_num_threads()}}\\n")
        return nn.functional.normalize(images, dim=-1) @ nn.functional.normalize(texts, dim=-1).T


@hookimpl
def register_similarity_heads(register):
    register("thread-recording-cosine", ThreadRecordingCosine)
'''

EXPERIMENT = tiny_vse_experiment(
    "threads", 1, 'similarity_head = { name = "thread-recording-cosine" }\ntrain.steps_per_epoch = 4\n'
)


class ThreadsSession:
    """A session whose job only notes torch's thread count while it runs."""

    log_dir = ""
    stopped = None

    def __init__(self) -> None:
        self.seen: list[int] = []

    def started(self, ticket) -> None:
        pass

    def finished(self, ticket, outcome) -> None:
        pass

    def run_here(self, ticket) -> JobOutcome:
        self.seen.append(torch.get_num_threads())
        return JobOutcome()


@pytest.mark.parametrize("threads", [1, 3])
def test_the_in_process_executor_runs_each_job_at_its_thread_count_and_restores_the_drivers(threads):
    before = torch.get_num_threads()
    session = ThreadsSession()
    InProcess(threads=threads).run([ticket(1), ticket(2)], session)
    assert session.seen == [threads, threads]
    assert torch.get_num_threads() == before


def test_by_default_an_in_process_job_never_gets_more_threads_than_torch_had():
    session = ThreadsSession()
    with torch_threads(1):
        InProcess().run([ticket(1)], session)
    assert session.seen == [1]


def test_loader_workers_take_their_cores_out_of_the_jobs_torch_threads():
    feed = PixelFeed(DEMO_IMAGES[:4], PixelSpec(size=16), workers=2)
    assert feed.workers >= 1
    with torch_threads(4):
        inside = [torch.get_num_threads() for _ in feed.batches([torch.tensor([0, 1]), torch.tensor([2, 3])], torch.device("cpu"), train=False)]
        after = torch.get_num_threads()
    assert inside == [max(1, 4 - feed.workers)] * 2 and after == 4


def test_without_loader_workers_the_job_keeps_its_threads():
    feed = PixelFeed(DEMO_IMAGES[:2], PixelSpec(size=16), workers=0)
    with torch_threads(3):
        assert [torch.get_num_threads() for _ in feed.batches([torch.tensor([0, 1])], torch.device("cpu"), train=False)] == [3]


RUNS = {
    # name: (command-line executor arguments, torch threads the job must see)
    "in-process, 1 thread": (["--executor", "in-process", "--executor-option", "threads=1"], 1),
    "in-process, 2 threads": (["--executor", "in-process", "--executor-option", "threads=2"], 2),
    "local worker, 2 threads": (["--executor", "local", "--workers", "1", "--executor-option", "threads=2"], 2),
}


def test_a_jobs_result_moves_by_float_rounding_only_with_executor_and_threads(tmp_path, monkeypatch):
    """The same job in process at 1 and 2 threads and in a local worker at 2: each job sees its
    thread count, and metrics and trained weights agree to float rounding (rtol 1e-4). The
    differences measured are printed (``pytest -s``) and stated in docs/experiments.md."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "thread_recording.py").write_text(THREAD_RECORDING_HEAD)
    experiment = write_experiment(tmp_path, EXPERIMENT)
    metrics, weights = {}, {}
    for name, (executor, threads) in RUNS.items():
        folder = tmp_path / name.replace(" ", "-").replace(",", "")
        seen = folder / "threads-seen.txt"
        folder.mkdir()
        monkeypatch.setenv(THREADS_SEEN, str(seen))
        out = itr_in_process("--plugins-dir", str(plugins), "run", str(experiment), "--results-dir", str(folder / "results"), *executor)
        assert out.code == 0, out.stderr[-3000:]
        assert set(seen.read_text().split()) == {str(threads)}, f"{name}: torch threads seen inside the job"
        [run] = search_runs(folder / "results", "threads", "tags.`itr.kind` = 'job'").to_dict("records")
        metrics[name] = {key: value for key, value in run.items() if key.startswith("metrics.full/")}
        checkpoint = download_checkpoint(store_uri(folder / "results"), run["run_id"], folder / "checkpoint")
        [weights_file] = checkpoint.rglob("*.safetensors")
        weights[name] = load_file(weights_file)
    moved = {}
    for one, other in [("in-process, 1 thread", "in-process, 2 threads"), ("in-process, 2 threads", "local worker, 2 threads")]:
        assert metrics[one].keys() == metrics[other].keys() and len(metrics[one]) > 5
        for key, value in metrics[other].items():
            assert value == pytest.approx(metrics[one][key], rel=1e-4, abs=1e-4), (one, other, key)
        for key, tensor in weights[other].items():
            torch.testing.assert_close(tensor, weights[one][key], rtol=1e-4, atol=1e-5, msg=f"{one} / {other}: {key}")
        moved[f"{one} / {other}"] = {
            "max |Δ weight|": max(float((tensor - weights[one][key]).abs().max()) for key, tensor in weights[other].items()),
            "max |Δ metric|": max(abs(value - metrics[one][key]) for key, value in metrics[other].items()),
        }
    print(f"\nmoved ({os.cpu_count()} cores): {json.dumps(moved, indent=1, ensure_ascii=False)}")

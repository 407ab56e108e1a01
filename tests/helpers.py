"""Helpers shared by tests: paths and a runner for the real `itr` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.toml"


@dataclass
class Completed:
    code: int
    stdout: str
    stderr: str


def run_itr(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 600) -> Completed:
    """Run the real `itr` command line in a fresh interpreter, as a user would.

    MLFLOW_TRACKING_URI is dropped from the inherited environment (mlflow.set_tracking_uri in
    the test process sets it), so every run uses the store under its own --results-dir.
    """
    inherited = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd or REPO_ROOT,
        env={**inherited, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (yet)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 (SQLite backend under `root`, served artifacts), which
    a test may kill (SIGKILL: no clean-up) and start again on the same port and store."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "MlflowServer":
        import time
        import urllib.request

        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}", "--artifacts-destination", str(self.root / "artifacts")],
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,  # its own group: uvicorn with it
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2).read()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}") from None
                time.sleep(0.3)

    def kill(self) -> None:
        """Stop the server at once, as a crash would (SIGKILL to its process group)."""
        import signal

        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        import signal

        self._signal(signal.SIGTERM)

    def _signal(self, signal_number: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal_number)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)


def store_uri(results_dir: Path) -> str:
    """The default MLflow store `itr run --results-dir results_dir` writes to."""
    return f"sqlite:///{results_dir / 'mlflow.db'}"


def search_runs(results_dir: Path, experiment: str, filter_string: str = ""):
    """All runs of `experiment` in the store under `results_dir`, as a DataFrame."""
    import mlflow

    client = mlflow.MlflowClient(store_uri(results_dir))
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000)
    rows = []
    for run in runs:
        row = {"run_id": run.info.run_id, "status": run.info.status}
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        rows.append(row)
    import pandas as pd

    return pd.DataFrame(rows)


def metric_history(results_dir: Path, run_id: str, key: str) -> list[float]:
    """Values of a step metric in step order."""
    import mlflow

    history = mlflow.MlflowClient(store_uri(results_dir)).get_metric_history(run_id, key)
    return [m.value for m in sorted(history, key=lambda m: m.step)]

def printed_leaderboard(stdout: str) -> dict[str, list[str]]:
    """The leaderboard `itr run` / `itr leaderboard` printed: ``"dataset / protocol"`` -> the
    method column of that table, in printed order."""
    tables: dict[str, list[str]] = {}
    title = None
    for line in stdout.splitlines():
        if line.startswith("### "):
            title = line.removeprefix("### ").strip()
            tables[title] = []
        elif title and line.startswith("| ") and not line.startswith("| method"):
            tables[title].append(line.split("|")[1].strip())
    return tables


def write_experiment(folder: Path, text: str) -> Path:
    """`text` as ``folder/exp.toml``, an experiment file for `plan` or `itr`."""
    path = folder / "exp.toml"
    path.write_text(text)
    return path


def itr_in_process(*args: str) -> Completed:
    """Run the real `itr` command line in this process (no interpreter start-up: seconds
    faster per call), with the store under its own --results-dir as `run_itr` has it; what the
    command sets in the environment (``--quiet``) ends with it."""
    import contextlib
    import io
    from unittest import mock

    import mlflow

    from harness.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    _forget_process_caches()
    try:
        with mock.patch.dict(os.environ), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
        mlflow.set_tracking_uri(saved)  # the commands set it for this process; None restores mlflow's default
        _forget_process_caches()
    return Completed(code, out.getvalue(), err.getvalue())


def _forget_process_caches() -> None:
    """Empty what the harness keeps for the life of a process (the per-query ranks it downloaded),
    before and after an in-process command: each command, and the test reading the store after
    it, reads the store as a fresh `itr` process would."""
    from harness.statistics.store import fetch_ranks

    cache_clear = getattr(fetch_ranks, "cache_clear", None)
    if cache_clear is not None:
        cache_clear()


def saved_elements(function) -> tuple:
    """`function()` and how many tensor elements autograd saved for its backward outside any
    checkpointed region (a checkpoint's own saved tensors never reach an outer hook)."""
    import torch

    saved = 0

    def pack(tensor: "torch.Tensor") -> "torch.Tensor":
        nonlocal saved
        saved += tensor.numel()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = function()
    return result, saved


def grouped_pairs(n_queries: int, n_candidates: int, k: int, last: int, seed: int, by: str) -> tuple:
    """A re-rank list: each query repeated k times with k random candidates, the last query
    with only `last`; (image_index, caption_index) with the queries on the `by` side."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    counts = torch.tensor([k] * (n_queries - 1) + [last])
    queries = torch.arange(n_queries).repeat_interleave(counts)
    candidates = torch.randint(0, n_candidates, (len(queries),), generator=generator)
    return (queries, candidates) if by == "image" else (candidates, queries)


def pixels_of(rgb, colour: str) -> int:
    """How many pixels of an RGB image (an array, height × width × 3) are exactly `colour`
    (``#rrggbb``): a method's bars drawn in its colour, wherever the image ends up."""
    return int((rgb == [int(colour[i : i + 2], 16) for i in (1, 3, 5)]).all(axis=-1).sum())


def tiny_vse_experiment(name: str, epochs: int, extra: str = "") -> str:
    """An experiment file `name` with one small VSE++ job on the demo set (32-d, batch 32,
    `epochs` epochs): the cheapest training job, for tests of what happens around a job.
    `extra` is appended as it is (more keys of the method, or more method tables)."""
    return f"""
name = "{name}"
[[datasets]]
name = "coco-demo"
[methods."vse++"]
text_encoder.min_count = 1
image_encoder.embed_dim = 32
text_encoder.embed_dim = 32
train.batch_size = 32
stages.main.epochs = {epochs}
{extra}"""

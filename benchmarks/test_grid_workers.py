"""Wall time of an 8-cell demo grid with 1 against 2 local worker processes, in the same run.

Run with ``pytest benchmarks/test_grid_workers.py --benchmark-only -p no:cacheprovider -s``.

The grid is 8 VSE++ cells on the embedded coco-demo set (2 margins × 2 learning rates × 2 seeds,
10 epochs each). Both settings use the `local` executor, so each cell pays the same start-up of
a fresh worker process (imports, plugins, cached features) and only the concurrency differs;
each worker gets cores / workers torch threads. The printed ratio is time(1 worker) /
time(2 workers): above 1 means the second worker paid off.
"""

from __future__ import annotations

import pytest

from tests.helpers import run_itr

GRID = """
name = "bench-{workers}"
seeds = [0, 1]
[[datasets]]
name = "coco-demo"
[methods."vse++"]
text_encoder.min_count = 1
train.batch_size = 32
stages.main.epochs = 10
[methods."vse++".grid]
"stages.main.loss.margin" = [0.1, 0.2]
"train.lr" = [2e-4, 5e-4]
"""
TIMES: dict[int, float] = {}


@pytest.mark.parametrize("workers", [1, 2])
def test_grid_wall_time(benchmark, tmp_path, workers):
    path = tmp_path / "grid.toml"
    path.write_text(GRID.format(workers=workers))

    def run_grid() -> None:
        out = run_itr("run", str(path), "--results-dir", str(tmp_path / "results"), "--executor", "local",
                      "--workers", str(workers), "--rerun-finished", timeout=3600)
        assert out.code == 0 and "8 jobs finished, 0 failed" in out.stderr, out.stderr[-3000:]

    benchmark.pedantic(run_grid, rounds=1, iterations=1)
    TIMES[workers] = benchmark.stats.stats.mean
    if len(TIMES) == 2:
        print(f"\n8-cell grid: 1 worker {TIMES[1]:.1f} s, 2 workers {TIMES[2]:.1f} s, speed-up {TIMES[1] / TIMES[2]:.2f}x")

"""What finished job runs show: every grid cell's value for each key of its block on the
leaderboard (runs logged before include cells were fully tagged too), and `itr compare` naming
the cells of the runs it was given."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from harness.experiment.grid import expand_cells
from harness.experiment.plan import plan
from harness.leaderboard import job_results, leaderboard_table
from harness.statistics.ranks import QueryRanks
from harness.tracking import Tracker
from tests.harness.experiment.test_grid import INCLUDE_GRID
from tests.helpers import itr_in_process, write_experiment

N_IMAGES = 4


def ranks(hits: int) -> QueryRanks:
    """Ranks of a 4-image, 20-caption test split where the first `hits` queries of each side hit."""
    i2t = np.where(np.arange(N_IMAGES) < hits, 0, 3)
    t2i = np.where(np.arange(5 * N_IMAGES) < 5 * hits, 0, 2)
    images = np.repeat(np.arange(N_IMAGES), 5)
    return QueryRanks(N_IMAGES, i2t, np.arange(N_IMAGES), t2i, images, np.full(5 * N_IMAGES, 8), {})


@pytest.fixture(scope="module")
def store(tmp_path_factory, registry):
    """Two experiments of the include grid in one store: ``tagged`` as itr logs it now, and
    ``untagged`` as older versions did (each cell tagged with the keys it sets only)."""
    folder = tmp_path_factory.mktemp("logged-cells")
    experiment, jobs = plan(write_experiment(folder, INCLUDE_GRID), registry)
    own_keys = {cell.label: set(cell.axes) for label, block in experiment.methods.items() for cell in expand_cells(label, block, "f")}
    tracker = Tracker(f"sqlite:///{folder / 'mlflow.db'}", folder)
    run_ids = {}
    for name in ("tagged", "untagged"):
        with tracker.experiment_run(name, {}, None, {}) as parent:
            for hits, job in enumerate(jobs, start=1):
                if name == "untagged":
                    job = replace(job, axes={key: value for key, value in job.axes.items() if key in own_keys[job.label]})
                with tracker.job_run(job, parent.info.run_id) as log:
                    log.metrics({"full/rsum": 100.0 * hits, "full/i2t_r1": 10.0 * hits})
                    log.ranks({"full": ranks(min(hits, N_IMAGES))})
                    run_ids[name, job.label] = log.run_id
    return tracker, run_ids


@pytest.mark.parametrize("experiment", ["tagged", "untagged"])
def test_the_leaderboard_shows_the_value_each_cell_ran_with(store, experiment):
    tracker, _ = store
    board = leaderboard_table(job_results(tracker.tracking_uri, tracker.experiment_id(experiment))).set_index("method")
    assert board.loc["ascl[positive_weight=0.9]", "axis:similarity_head.u1"] == "0.8", "the recipe's u1 it ran with"
    assert board.loc["ascl[similarity_head=cosine]", "axis:similarity_head.u1"] == "-", "cosine has no u1"
    assert board.loc["ascl[u1=1.0]", "axis:similarity_head"] == "ascl-fusion"
    assert board.loc["ascl[u1=1.0]", "axis:generators.positive_weight"] == "0.5"
    assert board.loc["vse++", "axis:similarity_head.u1"] == "", "a block without a grid stays blank"


def test_compare_names_the_cells_of_the_runs_it_was_given(store, tmp_path):
    tracker, run_ids = store
    a, b = run_ids["tagged", "ascl[u1=0.0]"], run_ids["tagged", "vse++"]
    out = itr_in_process("compare", a, b, "--tracking-uri", tracker.tracking_uri, "--resamples", "100")
    assert out.code == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith(
        f"A = run {a} (ascl[u1=0.0] on coco-demo (seed 0)), B = run {b} (vse++ on coco-demo (seed 0)), protocol full"
    )

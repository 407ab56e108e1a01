"""The README's demo, run as a user would, on the real embedded coco-demo set.

The commands run in this process (`itr_in_process`: the real command line, its exit code and
what it printed, without an interpreter and torch/mlflow/transformers start-up per command);
nothing here is about the process boundary, which tests/end_to_end/test_faults.py and
test_grids.py cover."""

from __future__ import annotations

import re

import mlflow
import pandas as pd
import pytest

from tests.helpers import DEMO_CONFIG, itr_in_process, metric_history, printed_leaderboard, search_runs, store_uri

CHANCE_T2I_R1 = 100 / 20  # 20 test images


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    results = tmp_path_factory.mktemp("demo-results")
    out = itr_in_process("run", str(DEMO_CONFIG), "--results-dir", str(results))
    assert out.code == 0, out.stderr[-3000:]
    return out, results, search_runs(results, "demo")


def board(results) -> pd.DataFrame:
    return pd.read_csv(results / "demo" / "leaderboard.csv").set_index("method")


DEMO_METHODS = {"class-bridge", "vse++", "vse-inf", "scan", "ascl"}


def test_demo_prints_a_leaderboard_with_every_method(demo):
    out, _, _ = demo
    assert set(printed_leaderboard(out.stdout)["coco-demo / full"]) == DEMO_METHODS
    assert "rsum" in out.stdout


def test_demo_writes_csv_and_markdown(demo):
    _, results, _ = demo
    assert set(board(results).index) == DEMO_METHODS
    assert "class-bridge" in (results / "demo" / "leaderboard.md").read_text()


def test_class_bridge_is_far_above_chance(demo):
    _, results, _ = demo
    bridge = board(results).loc["class-bridge"]
    assert bridge["t2i_r1"] >= 4 * CHANCE_T2I_R1
    assert bridge["rsum"] >= 300  # chance is 160


def test_vse_plus_plus_training_loss_falls(demo):
    _, results, runs = demo
    run_id = runs.loc[runs["tags.itr.label"] == "vse++", "run_id"].item()
    losses = metric_history(results, run_id, "train/loss")
    assert len(losses) == 30
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first


def test_demo_in_a_log_prints_a_line_per_training_epoch(demo):
    out, _, _ = demo
    vse = out.stderr.split("] vse++ on coco-demo")[1].split("done vse++ on coco-demo")[0]
    epochs = [line for line in vse.splitlines() if line.startswith("training: epoch ")]
    assert len(epochs) == 30, vse[-2000:]
    assert re.fullmatch(r"training: epoch 30/30, stage main 30/30, loss \d+\.\d{4}, lr \S+, elapsed \S+, eta 0s", epochs[-1])


def test_each_job_is_a_child_run_with_params_metrics_and_tags(demo):
    _, _, runs = demo
    parent = runs[runs["tags.itr.kind"] == "experiment"]
    children = runs[runs["tags.itr.kind"] == "job"]
    assert len(parent) == 1 and len(children) == len(DEMO_METHODS)
    assert set(children["tags.mlflow.parentRunId"]) == {parent["run_id"].item()}
    vse = children[children["tags.itr.label"] == "vse++"].iloc[0]
    assert vse["params.stages.main.loss.margin"] == "0.2"
    assert vse["tags.itr.component.losses"] == "hardest-negative-triplet"
    assert len(vse["tags.itr.config_hash"]) == 12
    assert vse["metrics.full/rsum"] == pytest.approx(
        sum(vse[f"metrics.full/{k}"] for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"))
    )


def test_leaderboard_is_attached_to_the_experiment_run(demo):
    _, results, runs = demo
    parent_id = runs.loc[runs["tags.itr.kind"] == "experiment", "run_id"].item()
    names = {a.path for a in mlflow.MlflowClient(store_uri(results)).list_artifacts(parent_id, "leaderboard")}
    assert names == {f"leaderboard/{name}" for name in ("leaderboard.csv", "leaderboard.md", "leaderboard.html", "slices_length.csv")}
    plots = {a.path for a in mlflow.MlflowClient(store_uri(results)).list_artifacts(parent_id, "plots")}
    assert {"plots/recall_coco-demo-full.png", "plots/slices_length_coco-demo-full.png"} <= plots
    report = {a.path for a in mlflow.MlflowClient(store_uri(results)).list_artifacts(parent_id, "report")}
    assert report == {"report/index.html"}


def test_demo_writes_a_report_page_with_every_method_its_run_its_configuration_and_the_figures(demo):
    _, results, runs = demo
    page = (results / "demo" / "index.html").read_text(encoding="utf-8")
    children = runs[runs["tags.itr.kind"] == "job"]
    assert all(f"<td>{method}</td>" in page for method in DEMO_METHODS)
    assert all(f"<code>{run_id}</code>" in page for run_id in children["run_id"])
    assert "<td>stages.main.loss.margin</td><td>0.2</td>" in page and "<h2>Slices by length</h2>" in page
    assert page.count('src="data:image/png;base64,') == 2  # the recall bars and the length slices
    assert f"mlflow ui --backend-store-uri {store_uri(results.resolve())}" in page


def test_leaderboard_command_rebuilds_the_same_table(demo):
    out, results, _ = demo
    again = itr_in_process("leaderboard", str(DEMO_CONFIG), "--results-dir", str(results))
    assert again.code == 0, again.stderr
    table = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert [line for line in again.stdout.splitlines() if line.startswith("|")] == table


def test_every_job_keeps_its_per_query_ranks(demo):
    _, results, runs = demo
    from harness.statistics.store import fetch_ranks

    for run_id in runs.loc[runs["tags.itr.kind"] == "job", "run_id"]:
        ranks = fetch_ranks(store_uri(results), run_id, "full")
        assert ranks is not None and ranks.n_images == 20 and len(ranks.t2i_rank) == 100


def test_the_printed_leaderboard_has_intervals_and_marks(demo):
    out, _, _ = demo
    assert "± 95% bootstrap interval half-width over queries" in out.stdout
    assert "**423.0 ± " in out.stdout  # the class bridge has the best rSum


def test_compare_two_methods_of_the_demo(demo):
    _, results, _ = demo
    out = itr_in_process("compare", "--experiment", "demo", "class-bridge", "vse++", "--results-dir", str(results))
    assert out.code == 0, out.stderr
    rsum = next(line for line in out.stdout.splitlines() if line.startswith("| rsum"))
    cells = [cell.strip() for cell in rsum.split("|")[1:-1]]
    rsums = board(results)["rsum"]
    expected = [rsums["class-bridge"], rsums["vse++"], rsums["class-bridge"] - rsums["vse++"]]
    assert [float(cell) for cell in cells[1:4]] == pytest.approx(expected, abs=0.06)
    assert expected[2] > 100 and float(cells[5]) < 0.05


def test_a_run_compared_with_itself_differs_by_nothing(demo):
    _, results, runs = demo
    run_id = runs.loc[runs["tags.itr.label"] == "vse++", "run_id"].item()
    out = itr_in_process("compare", run_id, run_id, "--results-dir", str(results))
    assert out.code == 0, out.stderr
    rsum = next(line for line in out.stdout.splitlines() if line.startswith("| rsum"))
    assert [cell.strip() for cell in rsum.split("|")[4:7]] == ["0.0", "[0.0, 0.0]", "1.000"]


def test_slices_by_caption_length_partition_the_queries(demo):
    _, results, _ = demo
    out = itr_in_process("slices", str(DEMO_CONFIG), "--results-dir", str(results), "--lengths", "9,11")
    assert out.code == 0, out.stderr
    table = pd.read_csv(results / "demo" / "slices_length.csv")
    assert set(table["slice"]) <= {"short (≤9)", "medium (10–11)", "long (≥12)"}
    assert (table.groupby("method")["queries"].sum() == 100).all() and set(table["method"]) == DEMO_METHODS
    assert list((results / "demo" / "plots").glob("slices_length_*.png"))

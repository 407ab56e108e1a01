"""One job trained by two gloo processes equals the same job in one process with the same
global batch: same loss curve to float rounding, same metrics (VSE++ on global vectors, SCAN on
region and word sets, whose gathered sets are padded to the widest slice)."""

from __future__ import annotations

import pytest

from tests.helpers import itr_in_process, metric_history, search_runs

PAIR = """
[methods."{method}-{processes}"]
method = "{method}"
image_encoder.embed_dim = 32
text_encoder = {{ embed_dim = 32, word_dim = 16, min_count = 1 }}
train = {{ batch_size = {batch}, steps_per_epoch = {steps}, processes = {processes} }}
stages.main.epochs = {epochs}
"""
SETTINGS = {"vse++": {"batch": 32, "steps": 4, "epochs": 3}, "scan": {"batch": 16, "steps": 3, "epochs": 2}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data-parallel")
    blocks = [PAIR.format(method=method, processes=n, **s) for method, s in SETTINGS.items() for n in (1, 2)]
    (folder / "dp.toml").write_text('name = "dp"\n[[datasets]]\nname = "coco-demo"\n' + "".join(blocks))
    out = itr_in_process("run", str(folder / "dp.toml"), "--results-dir", str(folder / "results"), "--quiet")
    assert out.code == 0, out.stderr[-3000:]
    found = search_runs(folder / "results", "dp", "tags.`itr.kind` = 'job'")
    return folder / "results", {row["tags.itr.label"]: row for _, row in found.iterrows()}


@pytest.mark.parametrize("method", list(SETTINGS))
def test_two_processes_follow_the_single_process_loss_curve(runs, method):
    results, by_label = runs
    one, two = (metric_history(results, by_label[f"{method}-{n}"]["run_id"], "train/loss") for n in (1, 2))
    assert len(one) == SETTINGS[method]["epochs"] and two == pytest.approx(one, rel=1e-5)
    assert by_label[f"{method}-2"]["metrics.full/rsum"] == by_label[f"{method}-1"]["metrics.full/rsum"]
    assert by_label[f"{method}-2"]["params.train.processes"] == "2"


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    (tmp_path / "bad.toml").write_text('name = "bad"\n[[datasets]]\nname = "coco-demo"\n[methods."vse++"]\ntrain = { batch_size = 33, processes = 2 }\n')
    out = itr_in_process("plan", str(tmp_path / "bad.toml"))
    assert out.code == 2 and "batch_size 33 does not split over 2 processes" in out.stderr and out.stderr.count("\n") == 1

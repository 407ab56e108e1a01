"""`itr run` checkpoints every job; `itr eval` rebuilds the model from it and evaluates.

The commands run in this process (`itr_in_process`, seconds faster each); the one-line answer
to an unknown run is checked on a real subprocess's stderr, all of it."""

from __future__ import annotations

import re

import pytest

from tests.helpers import itr_in_process, run_itr, search_runs

EXPERIMENT = """
name = "ckpt"
[[datasets]]
name = "coco-demo"
[methods."vse++"]
text_encoder.min_count = 1
image_encoder.embed_dim = 64
text_encoder.embed_dim = 64
train.batch_size = 32
stages.main.epochs = 2
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    (folder / "exp.toml").write_text(EXPERIMENT)
    out = itr_in_process("run", str(folder / "exp.toml"), "--results-dir", str(folder / "results"))
    assert out.code == 0, out.stderr[-2000:]
    run_id = re.search(r"run ([0-9a-f]{32})", out.stderr).group(1)
    return folder / "results", run_id


def test_eval_of_the_checkpoint_reproduces_the_logged_metrics(trained):
    results, run_id = trained
    logged = search_runs(results, "ckpt", "tags.`itr.kind` = 'job'").iloc[0]
    out = itr_in_process("eval", run_id, "--results-dir", str(results))
    assert out.code == 0, out.stderr[-2000:]
    row = next(line for line in out.stdout.splitlines() if line.startswith("| full"))
    assert float(row.split("|")[-2]) == pytest.approx(logged["metrics.full/rsum"], abs=0.05)


def test_eval_on_another_split(trained):
    results, run_id = trained
    out = itr_in_process("eval", run_id, "--results-dir", str(results), "--split", "train")
    assert out.code == 0 and "on coco-demo:train" in out.stdout


def test_eval_refuses_a_protocol_the_split_does_not_fit(trained):
    results, run_id = trained
    out = itr_in_process("eval", run_id, "--results-dir", str(results), "--protocol", "coco-1k")
    assert out.code == 2
    assert "needs 5000 test images, the split has 20" in out.stderr and "Traceback" not in out.stderr


def test_eval_of_an_unknown_run_is_one_line(trained):
    results, _ = trained
    out = run_itr("eval", "0" * 32, "--results-dir", str(results))
    assert out.code == 2 and out.stderr.count("\n") == 1 and "not found" in out.stderr


def test_eval_settings_change_how_not_what_is_scored(trained):
    """``--option eval.KEY=VALUE`` reaches the job's ``eval`` section: other block sizes, the
    same scores; a key the section lacks is one line naming it."""
    results, run_id = trained
    logged = search_runs(results, "ckpt", "tags.`itr.kind` = 'job'").iloc[0]
    out = itr_in_process("eval", run_id, "--results-dir", str(results), "--option", "eval.score_chunk=7", "--option", "eval.batch_size=5")
    assert out.code == 0, out.stderr[-2000:]
    row = next(line for line in out.stdout.splitlines() if line.startswith("| full"))
    assert float(row.split("|")[-2]) == pytest.approx(logged["metrics.full/rsum"], abs=0.05)
    bad = itr_in_process("eval", run_id, "--results-dir", str(results), "--option", "eval.chunk=7")
    assert bad.code == 2 and "itr eval: eval: chunk: unknown key 'chunk'" in bad.stderr and "Traceback" not in bad.stderr

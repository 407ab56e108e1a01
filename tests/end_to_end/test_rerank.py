"""Re-rank evaluation end to end on the demo set: SCAN re-ranks the candidates VSE++ picks."""

from __future__ import annotations

import pytest

from tests.helpers import itr_in_process, search_runs, tiny_vse_experiment

EXPERIMENT = tiny_vse_experiment(
    "rerank",
    2,
    """[methods.scan]
image_encoder.embed_dim = 32
text_encoder = { embed_dim = 32, word_dim = 16, min_count = 1 }
train.batch_size = 32
stages.main.epochs = 1
eval = { mode = "rerank", rerank_k = 10, prefilter = "vse++" }
""",
)
METRICS = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Both jobs of the experiment, run once: (results folder, {label: job run})."""
    folder = tmp_path_factory.mktemp("rerank")
    (folder / "rerank.toml").write_text(EXPERIMENT)
    out = itr_in_process("run", str(folder / "rerank.toml"), "--results-dir", str(folder / "results"), "--quiet")
    assert out.code == 0, out.stderr[-3000:]
    assert "training: epoch" not in out.stderr, "--quiet: no progress lines, though stderr is no terminal"
    assert out.stderr.index("vse++ on coco-demo") < out.stderr.index("scan on coco-demo"), "the prefilter runs first"
    runs = search_runs(folder / "results", "rerank", "tags.`itr.kind` = 'job'")
    return folder, {row["tags.itr.label"]: row for _, row in runs.iterrows()}


def table(stdout: str) -> dict[str, float]:
    row = next(line for line in stdout.splitlines() if line.startswith("| full"))
    return dict(zip(METRICS, (float(cell) for cell in row.strip("|").split("|")[1:])))


def test_the_rerank_job_scores_only_the_prefilters_candidates(finished):
    _, runs = finished
    scan = runs["scan"]
    assert scan["metrics.full/pairs_scored"] == 20 * 10 + 100 * 10, "k = 10 candidates for 20 image and 100 caption queries"
    assert runs["vse++"]["metrics.full/pairs_scored"] == 20 * 100
    assert 0 < scan["metrics.full/prefilter_t2i_recall"] <= 100 and scan["metrics.eval_seconds"] > 0
    assert scan["metrics.full/t2i_r1"] <= scan["metrics.full/prefilter_t2i_recall"], "re-ranking cannot beat its ceiling"


def test_a_k_covering_the_gallery_gives_full_scoring_exactly(finished):
    folder, runs = finished
    results, run_id = str(folder / "results"), runs["scan"]["run_id"]
    whole = itr_in_process("eval", run_id, "--results-dir", results, "--option", "eval.rerank_k=100")
    dense = itr_in_process("eval", run_id, "--results-dir", results, "--option", "eval.mode=full")
    assert whole.code == dense.code == 0, whole.stderr[-2000:] + dense.stderr[-2000:]
    assert table(whole.stdout) == table(dense.stdout)


def test_a_global_head_reranked_by_itself_keeps_every_recall(finished):
    folder, runs = finished
    results, run_id = str(folder / "results"), runs["vse++"]["run_id"]
    reranked = itr_in_process("eval", run_id, "--results-dir", results, "--option", "eval.mode=rerank", "--option", "eval.rerank_k=10")
    assert reranked.code == 0, reranked.stderr[-2000:]
    assert table(reranked.stdout) == pytest.approx({key: runs["vse++"][f"metrics.full/{key}"] for key in METRICS}, abs=0.05)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--option", "eval.rerank_k=0"], "itr eval: eval: rerank_k: input should be greater than 0 (got 0)"),
        (["--split", "train"], "eval.prefilter 'vse++': its run"),
    ],
    ids=["k below one", "prefilter on another split"],
)
def test_bad_rerank_settings_are_one_line_before_anything_is_scored(finished, options, message):
    folder, runs = finished
    out = itr_in_process("eval", runs["scan"]["run_id"], "--results-dir", str(folder / "results"), *options)
    assert out.code == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [out.stderr.strip().splitlines()[-1]]


def test_an_unknown_prefilter_label_is_refused_when_planned(tmp_path):
    (tmp_path / "bad.toml").write_text(EXPERIMENT.replace('prefilter = "vse++"', 'prefilter = "vse+"'))
    out = itr_in_process("plan", str(tmp_path / "bad.toml"))
    assert out.code == 2 and "methods.scan.eval.prefilter: 'vse+' is not another method of this experiment (did you mean 'vse++'?)" in out.stderr


def test_faiss_search_without_the_extra_is_refused_when_planned(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "faiss" else find_spec(name, *args))
    (tmp_path / "faiss.toml").write_text(EXPERIMENT.replace('prefilter = "vse++"', 'prefilter = "vse++", prefilter_search = "faiss"'))
    out = itr_in_process("plan", str(tmp_path / "faiss.toml"))
    assert out.code == 2 and "prefilter_search: 'faiss' needs the faiss extra: pip install 'itr-harness[faiss]'" in out.stderr

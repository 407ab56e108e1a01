"""`itr features` extracts and caches backbone features for a dataset ahead of any run.

The cache is reused across processes, so that test runs two real `itr` processes; a refused
name needs no process of its own (`itr_in_process`, seconds faster)."""

from __future__ import annotations

from tests.helpers import itr_in_process, run_itr


def test_features_lists_shapes_and_reuses_the_cache(tmp_path):
    args = ("features", "coco-demo", "--split", "test", "--no-text", "--cache-dir", str(tmp_path))
    first, second = run_itr(*args), run_itr(*args)
    assert first.code == 0, first.stderr[-2000:]
    assert "regions (49, 1280)" in first.stdout and "pooled (1280,)" in first.stdout
    assert "0 reused, 1 computed" in first.stderr
    assert "1 reused, 0 computed" in second.stderr


def test_features_of_an_unknown_dataset_suggests_the_name(tmp_path):
    out = itr_in_process("features", "coco-dem", "--cache-dir", str(tmp_path))
    assert out.code == 2 and "did you mean 'coco-demo'" in out.stderr

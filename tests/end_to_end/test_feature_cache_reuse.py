"""A second run reuses the backbone features the first one computed."""

from __future__ import annotations

import re

from tests.helpers import run_itr

BRIDGE_ONLY = """
name = "bridge"
[[datasets]]
name = "coco-demo"
[methods.class-bridge]
"""


def cache_counts(stderr: str) -> tuple[int, int]:
    reused, computed = re.search(r"feature cache .*: (\d+) reused, (\d+) computed", stderr).groups()
    return int(reused), int(computed)


def test_second_run_computes_no_features(tmp_path):
    experiment = tmp_path / "bridge.toml"
    experiment.write_text(BRIDGE_ONLY)
    args = ("run", str(experiment), "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"))
    first, second = run_itr(*args), run_itr(*args, "--rerun-finished")  # else the finished job is skipped
    assert first.code == 0 and second.code == 0, second.stderr[-2000:]
    first_reused, first_computed = cache_counts(first.stderr)
    assert first_computed > 0
    assert cache_counts(second.stderr) == (first_reused + first_computed, 0)
    assert first.stdout == second.stdout


VSE_AFTER_BRIDGE = BRIDGE_ONLY + """
[methods."vse++"]
text_encoder.min_count = 1
train.batch_size = 32
stages.main.epochs = 2
"""


def test_a_result_does_not_depend_on_what_the_cache_held(tmp_path):
    """The bridge caches the test split only, so the first vse++ job builds the image backbone
    for its training split after it was seeded; the second finds everything cached."""
    bridge, both = tmp_path / "bridge.toml", tmp_path / "both.toml"
    bridge.write_text(BRIDGE_ONLY)
    both.write_text(VSE_AFTER_BRIDGE.replace('name = "bridge"', 'name = "both"'))
    cache = ("--cache-dir", str(tmp_path / "cache"))
    assert run_itr("run", str(bridge), "--results-dir", str(tmp_path / "r0"), *cache).code == 0
    cold, warm = (run_itr("run", str(both), "--results-dir", str(tmp_path / name), *cache) for name in ("r1", "r2"))
    assert cold.code == 0 and warm.code == 0, cold.stderr[-2000:]
    assert cache_counts(cold.stderr)[1] > 0 and cache_counts(warm.stderr)[1] == 0
    assert cold.stdout == warm.stdout

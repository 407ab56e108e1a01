"""A second run reuses the backbone features the first one computed, and gets the same result."""

from __future__ import annotations

import re

from tests.helpers import run_itr

def cache_counts(stderr: str) -> tuple[int, int]:
    reused, computed = re.search(r"feature cache .*: (\d+) reused, (\d+) computed", stderr).groups()
    return int(reused), int(computed)


BRIDGE_THEN_VSE = """
name = "both"
[[datasets]]
name = "coco-demo"
[methods.class-bridge]
[methods."vse++"]
text_encoder.min_count = 1
train.batch_size = 32
stages.main.epochs = 1
"""
"""One epoch: the backbone runs before training starts, so the first epoch already shows whether
the results depend on it."""


def test_a_second_run_computes_no_features_and_gets_the_same_result(tmp_path):
    """The bridge job caches the test split only, so on a cold cache the vse++ job runs the image
    backbone on its training split after it was seeded; the second run finds everything cached.
    The results must not depend on that."""
    both = tmp_path / "both.toml"
    both.write_text(BRIDGE_THEN_VSE)
    cache = ("--cache-dir", str(tmp_path / "cache"))
    cold, warm = (run_itr("run", str(both), "--results-dir", str(tmp_path / name), *cache) for name in ("r1", "r2"))
    assert cold.code == 0 and warm.code == 0, cold.stderr[-2000:]
    cold_reused, cold_computed = cache_counts(cold.stderr)
    assert cold_computed > 0 and cache_counts(warm.stderr) == (cold_reused + cold_computed, 0)
    assert cold.stdout == warm.stdout

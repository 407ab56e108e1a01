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

"""The command line as a user meets it: fast help, plugin listing, plans (bad input: tests/end_to_end/test_bad_input.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import DEMO_CONFIG, REPO_ROOT

NO_TORCH_PROBE = """
import sys
from harness.cli import main
try:
    main({args!r})
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = sorted(m for m in ("torch", "transformers", "mlflow") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


@pytest.mark.parametrize("args", [["--help"], ["plugins"]])
def test_help_and_plugins_import_no_torch(args):
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH_PROBE.format(args=args)], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("HEAVY:"), proc.stdout


def test_plugins_lists_each_plugin_with_version_and_components(itr):
    out = itr("plugins")
    assert out.code == 0, out.stderr
    vse_line = next(line for line in out.stdout.splitlines() if line.startswith("vse "))
    assert "0.1.0" in vse_line and "method:vse++" in vse_line and "loss:hardest-negative-triplet" in vse_line


def test_plan_prints_the_demo_jobs(itr):
    out = itr("plan", str(DEMO_CONFIG))
    assert out.code == 0, out.stderr
    methods = DEMO_CONFIG.read_text().count("\n[methods.")
    assert f"{methods} jobs in experiment 'demo': {methods} method cells × 1 datasets × 1 seeds" in out.stdout
    assert "class-bridge" in out.stdout and "vse++" in out.stdout


def test_missing_experiment_file_is_reported(itr, tmp_path):
    out = itr("plan", str(tmp_path / "nope.toml"))
    assert out.code == 2 and "no such experiment file" in out.stderr

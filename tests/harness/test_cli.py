"""The command line as a user meets it: fast help, plugin listing, plans, one-line errors."""

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


BAD_EXPERIMENTS = {
    "toml syntax": ('name = "x"\n[[datasets]\n', "invalid TOML"),
    "unknown top-level key": ('name = "x"\nepochs = 3\n[[datasets]]\nname = "coco-demo"\n[methods."vse++"]\n', "epochs: extra inputs are not permitted"),
    "unknown method": ('name = "x"\n[[datasets]]\nname = "coco-demo"\n[methods.vse]\n', "unknown method 'vse' (did you mean 'vse++'?)"),
    "unknown option": (
        'name = "x"\n[[datasets]]\nname = "coco-demo"\n[methods."vse++"]\ntext_encoder.min_cont = 2\n',
        "methods.vse++.text_encoder: unknown option 'min_cont' for text-encoder 'vse-gru' (did you mean 'min_count'?)",
    ),
    "negative lr": (
        'name = "x"\n[[datasets]]\nname = "coco-demo"\n[methods."vse++"]\ntrain.lr = -1.0\n',
        "methods.vse++: train.lr: input should be greater than 0 (got -1.0)",
    ),
    "unknown dataset": ('name = "x"\n[[datasets]]\nname = "coco-dem"\n[methods."vse++"]\n', "unknown dataset 'coco-dem' (did you mean 'coco-demo'?)"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXPERIMENTS))
def test_bad_experiment_file_is_one_line_with_exit_code_2(itr, tmp_path, case):
    text, expected = BAD_EXPERIMENTS[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = itr("plan", str(path))
    assert out.code == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), out.stderr
    assert expected in lines[0]


def test_missing_experiment_file_is_reported(itr, tmp_path):
    out = itr("plan", str(tmp_path / "nope.toml"))
    assert out.code == 2 and "no such experiment file" in out.stderr

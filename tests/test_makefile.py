"""The two commands of the README quick start: `make demo` and `make test`, read with `make -n`
(what make would run, running nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None, reason="make is not installed"
)


def dry_run(*args: str) -> list[str]:
    """The commands `make ARGS` would run, one per line (trailing blanks of an empty ARGS cut).

    MAKEFLAGS is dropped: under `make test ARGS=…` it would hand the outer ARGS to this make.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    proc = subprocess.run(
        ["make", "-n", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.rstrip() for line in proc.stdout.splitlines()]


def test_a_first_run_creates_the_environment_installs_and_passes_args_to_pytest(
    tmp_path,
):
    venv = tmp_path / "venv"
    commands = dry_run("test", f"VENV={venv}", "ARGS=-k recall -q")
    assert commands[:3] == [
        f"python3 -m venv {venv}",
        f"{venv}/bin/python -m pip install --quiet --upgrade pip setuptools",
        f"{venv}/bin/python -m pip install torch==2.13.0 -e '.[test,ray]'",
    ]
    assert (
        commands[-1]
        == f"HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 {venv}/bin/python -m pytest -k recall -q"
    )


def test_an_environment_installed_after_the_last_pyproject_change_is_not_installed_again(
    tmp_path,
):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # newer than pyproject.toml
    assert dry_run("demo", f"VENV={venv}") == [f"{venv}/bin/itr run configs/demo.toml"]

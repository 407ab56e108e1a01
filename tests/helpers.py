"""Helpers shared by tests: paths and a runner for the real `itr` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.toml"


@dataclass
class Completed:
    code: int
    stdout: str
    stderr: str


def run_itr(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 600) -> Completed:
    """Run the real `itr` command line in a fresh interpreter, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd or REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr)

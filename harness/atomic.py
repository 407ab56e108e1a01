"""Writing a file so that a reader never sees half of it: write a staging file, then rename.

A process killed mid-write leaves at most a hidden staging file beside the target, never a
truncated target: nothing finished is ever replaced by something unfinished.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable


def write_atomically(path: Path, write: Callable[[Path], object], keep_existing: bool = False) -> Path:
    """Call ``write(staging)`` on a hidden file beside `path` (same suffix, so writers that pick
    a format by suffix still do), then rename it to `path`; returns `path`.

    With `keep_existing`, a `path` that exists stays as it is (the staging file is linked in
    only where there is none): when two processes create the same file at once (two drivers
    starting on one new store), the first one's stays, and a process that already opened it
    never finds its file replaced under it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(staging)
        if not keep_existing:
            os.replace(staging, path)
        elif not os.path.lexists(path):
            with contextlib.suppress(FileExistsError):
                os.link(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    """`write_atomically` for UTF-8 text."""
    return write_atomically(path, lambda staging: staging.write_text(text, encoding="utf-8"))

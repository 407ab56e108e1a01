"""Cheap integrity checks of a split's image files, run before the run starts.

A file that is not an image, or a download cut short, would otherwise stop feature extraction
in the middle of a job. Decoding every image up front would cost as much as the extraction, so
each file is checked with two small reads: PIL parses the header, and the formats that have an
end marker (JPEG's EOI, PNG's IEND chunk) must have it in their last bytes. A file damaged in
the middle passes and is reported when it is decoded (`baselines.backbones.image_preprocessing`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from harness.errors import UserError

TAIL_BYTES = 1024
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}
"""Bytes a whole file of the format holds near its end. JPEG's entropy-coded data escapes 0xFF,
so FFD9 in the tail is the real end of image; some writers pad a few bytes after it."""


def image_problem(path: Path) -> str | None:
    """What is wrong with one image file, or None if its header and end look whole."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image_format = image.format
    except FileNotFoundError:
        return "file not found"
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"not a readable image ({str(exc) or type(exc).__name__})"
    marker = END_MARKERS.get(image_format or "")
    if marker is not None:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - TAIL_BYTES))
            if marker not in handle.read():
                return f"truncated {image_format} file (no end marker; {size} bytes): download it again"
    return None


def check_image_files(paths: Sequence[Path], split_title: str) -> None:
    """Raise a UserError naming the first broken file of a split and how many there are."""
    broken = [(path, problem) for path in paths if (problem := image_problem(Path(path))) is not None]
    if broken:
        path, problem = broken[0]
        others = f" ({len(broken)} of the {len(paths)} image files of {split_title} are broken)" if len(broken) > 1 else ""
        raise UserError(f"{path}: {problem}{others}")

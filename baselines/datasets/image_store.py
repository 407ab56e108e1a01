"""Images that are not files of their own (tar members, Arrow cells), kept as files by content.

The image backbones, the pre-run image check and the feature cache's key all read image files
(`RetrievalSplit.image_paths`). A tar shard read member by member, or a Hugging Face table, has
no such file, so each image's bytes are written into a content-addressed folder: named by their
sha256, written atomically, and only once. Loading the split again, or another dataset holding
the same picture, finds the file already there. The feature cache hashes the same bytes, so the
features of a stored image are those of the original.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from harness.atomic import write_atomically
from harness.errors import UserError
from harness.features import default_cache_dir
from harness.image_files import image_problem

SUFFIX_OF_FORMAT = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
}


def default_image_store() -> Path:
    """``images/`` inside the feature cache's folder: the images are kept for the same reason
    as the features (so that a second run reads nothing twice), and can be deleted alike."""
    return default_cache_dir() / "images"


class ImageStore:
    """A folder of image files named by the sha256 of their bytes.

    Args:
        root: the folder (default: `default_image_store`).
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = (
            Path(root).expanduser() if root is not None else default_image_store()
        )

    def add(self, data: bytes, where: str) -> Path:
        """The file holding `data`, written on first sight.

        Raises:
            UserError: the bytes are not a whole image; the message starts with `where` (the
                shard and member, or the table row, they came from).
        """
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format or ""
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UserError(
                f"{where}: not a readable image ({str(exc) or type(exc).__name__})"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        path = (
            self.root
            / digest[:2]
            / f"{digest}{SUFFIX_OF_FORMAT.get(image_format, '.img')}"
        )
        if not path.is_file():
            write_atomically(path, lambda staging: staging.write_bytes(data))
            problem = image_problem(path)
            if problem is not None:
                path.unlink()
                raise UserError(f"{where}: {problem}")
        return path

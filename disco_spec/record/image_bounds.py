"""The one way disco-spec opens an image it did not just render (a run folder's frame, a manifest's source,
the images `diff` compares): the file size and the pixel count (from the header) are bounded before any
pixel is decoded, and every failure is a PngFormatError (exit 2) naming the file."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from .pngmeta import MAX_PNG_BYTES, PngFormatError, check_pixels


@contextlib.contextmanager
def open_image_bounded(path: str | os.PathLike) -> Iterator[Any]:
    """PIL's Image.open with the size (MAX_PNG_BYTES) and pixels (pngmeta.MAX_PIXELS) bounded first."""
    from PIL import Image

    try:
        size = os.stat(path).st_size
        if size > MAX_PNG_BYTES:
            raise PngFormatError(path, f"{size} bytes: larger than the {MAX_PNG_BYTES} bytes an image may have "
                                       "(MAX_PNG_BYTES)")
        with Image.open(path) as img:
            check_pixels(path, img.width, img.height)
            yield img
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # PIL's own text and size limits
        raise PngFormatError(path, f"cannot decode image: {exc}") from None

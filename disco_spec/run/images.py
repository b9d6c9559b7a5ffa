"""Image files in and out: init images and image prompts read (local files or URLs, via run.inputs), 8-bit PNGs written
atomically with their text chunks. The engine only sees the tensors these produce."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import torch
from PIL import Image, PngImagePlugin

from ..atomic import atomic_output
from ..engine.images import pil_to_pm1
from ..errors import SpecError

# Init images and image prompts are resized to at most 8192x8192; decoding a 20000x20000 file would
# take gigabytes first. 100 megapixels is 300 MB of RGB.
MAX_INPUT_PIXELS = 100_000_000

if TYPE_CHECKING:
    from .inputs import InputStore


def open_rgb(path: str, inputs: InputStore | None, field: str) -> Image.Image:
    """Open an image a spec names (a local file or an http(s) URL, read through the render's
    run.inputs.InputStore, which enforces the InputPolicy) as RGB; `inputs=None`: a file of the run
    folder itself. A missing or undecodable file is the spec's fault (exit 2)."""
    try:
        if inputs is None:
            img = Image.open(path)
        else:
            img = Image.open(io.BytesIO(inputs.read(path, field)))
        if img.width * img.height > MAX_INPUT_PIXELS:  # checked from the header, before decoding
            why = f"image {path!r} is {img.width}x{img.height}, more than MAX_INPUT_PIXELS = {MAX_INPUT_PIXELS} pixels"
            raise SpecError(f"{field}: {why}", [(field, why)])
        return img.convert("RGB")
    except Image.DecompressionBombError as exc:
        why = f"image {path!r} is too large to decode ({exc}); the limit is MAX_INPUT_PIXELS = {MAX_INPUT_PIXELS} pixels"
        raise SpecError(f"{field}: {why}", [(field, why)]) from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"{field}: cannot read image {path!r}: {exc}", [(field, f"cannot read image {path!r} ({exc})")])


def load_init_image(path: str, side_x: int, side_y: int, *, inputs: InputStore | None) -> torch.Tensor:
    """The init: RGB, Lanczos-resized to exactly side_x × side_y (aspect not kept, quirk Q30), in [-1, 1]."""
    img = open_rgb(path, inputs, "init.init_image").resize((side_x, side_y), Image.LANCZOS)
    return pil_to_pm1(img)


def load_image_prompt(path: str, side_x: int, side_y: int, *, inputs: InputStore | None) -> torch.Tensor:
    """An image prompt: shorter side Lanczos-resized to min(side_x, side_y, w, h), in [-1, 1]."""
    img = open_rgb(path, inputs, "prompts.image_prompts")
    w, h = img.size
    short = min(side_x, side_y, w, h)
    # torchvision's resize(int): the shorter side becomes `short`, the longer keeps the aspect (truncated)
    if w <= h:
        size = (short, int(short * h / w))
    else:
        size = (int(short * w / h), short)
    return pil_to_pm1(img.resize(size, Image.LANCZOS))


def encode_png(img: Image.Image, text: Mapping[str, str] | None = None) -> bytes:
    """The bytes write_png_atomic writes (a resume compares them with the journal before writing any)."""
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_itxt(k, v, zip=True)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def write_png_atomic(img: Image.Image, dest: str | Path, text: Mapping[str, str] | None = None) -> Path:
    """Write a PNG via a temp file in the same folder and an atomic rename; never a half-written file."""
    dest = Path(dest)
    data = encode_png(img, text)
    with atomic_output(dest) as f:
        f.write(data)
    return dest

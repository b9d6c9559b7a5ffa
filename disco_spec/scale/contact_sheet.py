"""Contact sheets: a grid of images with labelled rows and columns (the EZ-chart of a parameter sweep).

    title
                  col_title
    row_title   | col 0 | col 1 | ...
    row 0       | img   | img   |
    row 1       | img   | img   |

Images are scaled down to fit `max_side` (tiny ones are enlarged by whole pixels up to `min_side`); a
missing image is a grey box. Labels longer than
their cell are shortened with '...'. The result is a plain RGB PIL image; `save_png` writes it
atomically without any time stamp, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MISSING = (200, 200, 200)

__all__ = ["make_contact_sheet", "save_png", "sweep_contact_sheet"]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _text_size(font: Any, text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    left, top, right, bottom = font.getbbox(text)
    return int(right - left), int(bottom - top)


def _fit(font: Any, text: str, width: int) -> str:
    if _text_size(font, text)[0] <= width:
        return text
    while text and _text_size(font, text + "...")[0] > width:
        text = text[:-1]
    return text + "..." if text else ""


def _load(path: str | os.PathLike | None, max_side: int, min_side: int) -> Any:
    from PIL import Image

    if path is None or not Path(path).is_file():
        return None
    with Image.open(path) as im:
        img = im.convert("RGB")
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    factor = min_side // max(img.size)
    if factor > 1:  # tiny renders: whole-pixel enlargement, so that they can be seen
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    return img


def make_contact_sheet(
    images: Mapping[tuple[int, int], str | os.PathLike | None],
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    title: str = "",
    row_title: str = "",
    col_title: str = "",
    max_side: int = 256,
    min_side: int = 128,
    pad: int = 8,
    font_size: int = 14,
) -> Any:
    """A grid of `len(rows)` × `len(cols)` images; `images[(row, col)]` is a file path (or None).

    The image's `info["cell_boxes"]` maps (row, col) to the (x0, y0, x1, y1) box each image was pasted in.
    """
    from PIL import Image, ImageDraw

    font = _font(font_size)
    title_font = _font(font_size + 2)
    loaded = {pos: _load(p, max_side, min_side) for pos, p in images.items()}
    present = [im for im in loaded.values() if im is not None]
    cell_w = max([im.width for im in present] + [32])
    cell_h = max([im.height for im in present] + [32])
    line_h = _text_size(font, "Ag|")[1] + pad // 2
    label_w = max([_text_size(font, r)[0] for r in rows] + [_text_size(font, row_title)[0]] + [0])
    left = label_w + 2 * pad if label_w else pad
    top = pad
    title_h = _text_size(title_font, "Ag|")[1] + pad if title else 0
    col_title_h = line_h if col_title else 0
    header = top + title_h + col_title_h + line_h
    width = left + len(cols) * (cell_w + pad)
    width = max(width, _text_size(title_font, title)[0] + 2 * pad)
    height = header + len(rows) * (cell_h + pad) + pad

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = top
    if title:
        draw.text((pad, y), _fit(title_font, title, width - 2 * pad), fill=INK, font=title_font)
        y += title_h
    grid_w = len(cols) * (cell_w + pad) - pad
    if col_title:
        text = _fit(font, col_title, grid_w)
        draw.text((left + (grid_w - _text_size(font, text)[0]) // 2, y), text, fill=INK, font=font)
        y += col_title_h
    if row_title:
        draw.text((pad, y), _fit(font, row_title, label_w), fill=INK, font=font)
    for c, label in enumerate(cols):
        text = _fit(font, label, cell_w)
        x = left + c * (cell_w + pad) + (cell_w - _text_size(font, text)[0]) // 2
        draw.text((x, y), text, fill=INK, font=font)
    boxes: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    for r, label in enumerate(rows):
        y0 = header + r * (cell_h + pad)
        if label:
            text = _fit(font, label, label_w)
            draw.text((pad, y0 + (cell_h - _text_size(font, text)[1]) // 2), text, fill=INK, font=font)
        for c in range(len(cols)):
            x0 = left + c * (cell_w + pad)
            im = loaded.get((r, c))
            if im is None:
                draw.rectangle([x0, y0, x0 + cell_w - 1, y0 + cell_h - 1], fill=MISSING)
                if (r, c) in images:
                    draw.text((x0 + 4, y0 + 4), _fit(font, "missing", cell_w - 8), fill=INK, font=font)
                continue
            px, py = x0 + (cell_w - im.width) // 2, y0 + (cell_h - im.height) // 2
            sheet.paste(im, (px, py))
            boxes[(r, c)] = (px, py, px + im.width, py + im.height)
    sheet.info["cell_boxes"] = boxes  # where each image was pasted (not saved in the PNG)
    return sheet


def sweep_contact_sheet(plan: Any, images: Mapping[int, str | os.PathLike | None], **kwargs: Any) -> Any:
    """The contact sheet of a sweep (disco_spec.scale.sweep.SweepPlan): rows = the first key's values,
    columns = the product of the other keys' values (one row of cells for one key, or in zip mode)."""
    layout = plan.layout()
    grid = {layout["positions"][i]: p for i, p in images.items()}
    shape = "x".join(str(n) for n in plan.shape())
    title = f"{plan.name}: {plan.mode} sweep {shape}"
    if all(a.path != "run.set_seed" for a in plan.axes):
        title += f", seed {plan.base_document['run']['set_seed']}"
    return make_contact_sheet(grid, layout["rows"], layout["cols"], title=title, row_title=layout["row_title"],
                              col_title=layout["col_title"], **kwargs)


def save_png(image: Any, path: str | os.PathLike) -> Path:
    """Write a PIL image as PNG, atomically (no time stamps: same pixels, same bytes)."""
    from ..record.pngmeta import atomic_write

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())
    return Path(path)

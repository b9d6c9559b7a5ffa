"""Two runs' output files compared: identical pixels, or PSNR, the largest difference and a difference image."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..record import pngmeta
from .sources import Source


@dataclass
class OutputComparison:
    path: str
    status: str  # "identical" | "differs" | "only in A" | "only in B"
    psnr: float | None = None  # dB; None when identical or not computable
    max_abs_diff: int | None = None
    diff_image: str | None = None
    note: str | None = None

    def text(self) -> str:
        s = f"{self.path}: {self.status}"
        if self.status == "differs":
            if self.psnr is not None:
                s += f", PSNR {self.psnr:.2f} dB, max abs diff {self.max_abs_diff}"
            if self.diff_image:
                s += f" (difference image: {self.diff_image})"
        if self.note:
            s += f" ({self.note})"
        return s


def _rgb(path: str | os.PathLike) -> Any:
    import numpy as np

    from ..record.image_bounds import open_image_bounded

    with open_image_bounded(path) as img:  # size and pixel count bounded before decoding
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def compare_images(a: str | os.PathLike, b: str | os.PathLike, diff_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """PSNR (dB; inf when equal) and max absolute difference of two images (as 8-bit RGB).

    With `diff_path`, writes |a − b| as a PNG, scaled so that the largest difference is white.
    """
    import numpy as np

    x, y = _rgb(a), _rgb(b)
    if x.shape != y.shape:
        return {"comparable": False, "psnr": None, "max_abs_diff": None, "diff_image": None,
                "note": f"sizes differ: {x.shape[1]}x{x.shape[0]} vs {y.shape[1]}x{y.shape[0]}"}
    d = np.abs(x - y)
    mse = float(np.mean(d.astype(np.float64) ** 2))
    value = math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
    peak = int(d.max())
    written = None
    if diff_path is not None and peak > 0:
        from PIL import Image
        import io

        scaled = (d.astype(np.float64) * (255.0 / peak)).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(scaled, "RGB").save(buf, format="PNG")
        pngmeta.atomic_write(Path(diff_path), buf.getvalue())
        written = str(diff_path)
    return {"comparable": True, "psnr": value, "max_abs_diff": peak, "diff_image": written, "note": None}


def _compare_output(path: str, ra: Mapping[str, Any], rb: Mapping[str, Any], fa: Path | None, fb: Path | None,
                    diff_dir: Path | None) -> OutputComparison:
    if ra.get("pixels_sha256") and ra.get("pixels_sha256") == rb.get("pixels_sha256"):
        return OutputComparison(path, "identical")
    cmp = OutputComparison(path, "differs")
    if fa is None or fb is None:
        cmp.note = "pixel hashes differ; image files not available for PSNR"
        return cmp
    if not (pngmeta.is_png(fa) and pngmeta.is_png(fb)):
        cmp.note = "file hashes differ"
        return cmp
    target = None
    if diff_dir is not None:
        target = diff_dir / (Path(path).with_suffix("").as_posix().replace("/", "__") + ".diff.png")
    r = compare_images(fa, fb, target)
    if not r["comparable"]:
        cmp.note = r["note"]
        return cmp
    if r["max_abs_diff"] == 0:  # same pixels, yet a different hash: mode or size metadata differ
        cmp.note = "same RGB values, different pixel format"
    cmp.psnr, cmp.max_abs_diff, cmp.diff_image = r["psnr"], r["max_abs_diff"], r["diff_image"]
    return cmp


def output_differences(sa: Source, sb: Source, diff_dir: str | os.PathLike | None = None) -> list[OutputComparison]:
    recs_a, recs_b = sa.output_records(), sb.output_records()
    files_a, files_b = sa.output_files(), sb.output_files()
    dd = Path(diff_dir) if diff_dir is not None else None
    if dd is not None:
        dd.mkdir(parents=True, exist_ok=True)
    if sa.kind == "png" and sb.kind == "png" and len(recs_a) == 1 and len(recs_b) == 1:
        ra, rb = recs_a[0], recs_b[0]
        name = ra["path"] if ra["path"] == rb["path"] else f"{sa.path.name} vs {sb.path.name}"
        return [_compare_output(name, ra, rb, sa.path, sb.path, dd)]
    ma = {r["path"]: r for r in recs_a}
    mb = {r["path"]: r for r in recs_b}
    out = []
    for path in list(ma) + [p for p in mb if p not in ma]:
        if path not in mb:
            out.append(OutputComparison(path, "only in A"))
        elif path not in ma:
            out.append(OutputComparison(path, "only in B"))
        else:
            out.append(_compare_output(path, ma[path], mb[path], files_a.get(path), files_b.get(path), dd))
    return out

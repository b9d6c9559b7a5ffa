"""The comparison page: one self-contained HTML file that shows runs side by side (`diff A B --html FILE`, and
a sweep's `comparison.html` for all its cells).

What the page holds, for the pair of runs chosen (A and B; a sweep's page lets one pick any two cells from
its grid, each cell with its values):

* the two images side by side (an animation's frames, with a frame slider);
* an A/B wipe: B over A, cut at a slider;
* an amplified difference heatmap (|A - B|, largest channel, scaled so that the largest difference is
  full scale, drawn in the browser from the two embedded images);
* PSNR and the largest difference per image (computed here, by `repro.outputs`, as `diff` prints them);
* the settings diff in DD's terms (`frames 10–80: zoom 1.05 → 1.1`, `guidance.clip_guidance_scale: 5000 →
  1500`: `repro.compare`'s report), then models, code, packages and environment.

Self-contained: no network (no scripts, styles or fonts from elsewhere; `Content-Security-Policy`
allows only inline ones and data: images); images are embedded as data: URIs of PNGs re-encoded from the
pixels alone (the text chunks stay out). Everything a run brings (labels, paths, settings, prompts) is
data: it is embedded as JSON and put on the page with `textContent`, never parsed as HTML. MLflow shows
HTML artifacts in an iframe sandboxed to `allow-scripts` (an opaque origin): the page needs nothing
more (no storage, no cookies, no requests).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import SpecError
from ..record import pngmeta
from .compare import DiffReport, diff_sources
from .sources import Source, load_source

# Bounds: a page must open in a browser tab (and in MLflow's artifact view) without exhausting it.
MAX_FRAMES_PER_RUN = 400  # images embedded per run; the rest are listed as left out
MAX_EMBED_BYTES = 200 << 20  # all embedded PNGs together, before base64
MAX_ALL_PAIRS_RUNS = 36  # up to this many runs every pair is compared; above, each run with the first


@dataclass
class PageRun:
    """One run on the page: its label, its values (a sweep cell's swept settings) and where it is."""

    label: str
    source: Source
    values: dict[str, str] = field(default_factory=dict)


def _image_outputs(source: Source) -> list[tuple[str, Path]]:
    """(output path, file) of the run's final images, in plan order (frames in order)."""
    files = source.output_files()
    out = []
    for rec in source.output_records():
        path = rec.get("path")
        if rec.get("kind", "image") == "image" and path in files and pngmeta.is_png(files[path]):
            out.append((path, files[path]))
    return out


def png_data_uri(path: str | os.PathLike) -> tuple[str, int]:
    """(data: URI, PNG bytes) of an image re-encoded from its pixels (RGB or RGBA), without text chunks."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            pngmeta.check_pixels(path, img.width, img.height)
            img.load()
            pixels = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise pngmeta.PngFormatError(path, f"cannot decode image: {exc}") from None
    buf = io.BytesIO()
    pixels.save(buf, format="PNG", optimize=False)
    data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), len(data)


def _number(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and (math.isinf(x) or math.isnan(x))) else round(float(x), 3)


def _text(value: Any) -> str:
    from .compare import fmt

    return fmt(value, limit=400)


def pair_summary(report: DiffReport) -> dict[str, Any]:
    """What the page shows of one DiffReport: settings rows (DD's terms), other rows, outputs."""
    settings = [{"where": c.where, "setting": c.field, "a": _plan_value(c, "a"), "b": _plan_value(c, "b"),
                 "text": c.text()} for c in report.plan]
    settings += [{"where": "", "setting": c.path, "a": _text(c.a), "b": _text(c.b), "text": c.text()}
                 for c in report.spec]
    other = []
    for section in ("models", "code", "packages", "environment"):
        for c in getattr(report, section):
            other.append({"section": section, "setting": c.path, "a": _text(c.a), "b": _text(c.b)})
    outputs = [{"path": o.path, "status": o.status, "psnr": _number(o.psnr), "max_abs_diff": o.max_abs_diff,
                "note": o.note} for o in report.outputs]
    return {"same": report.same, "differences": report.n_differences, "settings": settings, "other": other,
            "outputs": outputs, "notes": list(report.notes)}


def _plan_value(change: Any, side: str) -> str:
    from .compare import ITEMS_FIELD, ABSENT, fmt

    value = getattr(change, side)
    if change.field == ITEMS_FIELD:
        return "(absent)" if value is ABSENT else "present"
    if change.varying:
        first, last = value
        return f"{fmt(first)}…{fmt(last)}"
    return fmt(value)


def page_data(title: str, runs: Sequence[PageRun], *, kind: str = "diff") -> dict[str, Any]:
    """The JSON the page is built from: every run's images and values, and the comparison of each pair."""
    if len(runs) < 2:
        raise SpecError("comparison page", [("comparison page", f"needs two runs or more (got {len(runs)})")])
    notes: list[str] = []
    budget = MAX_EMBED_BYTES
    run_docs = []
    for r in runs:
        frames = []
        images = _image_outputs(r.source) if r.source.kind != "spec" else []
        for i, (name, path) in enumerate(images):
            if i >= MAX_FRAMES_PER_RUN:
                notes.append(f"{r.label}: {len(images) - MAX_FRAMES_PER_RUN} more image(s) not embedded "
                             f"(MAX_FRAMES_PER_RUN = {MAX_FRAMES_PER_RUN})")
                break
            uri, size = png_data_uri(path)
            if size > budget:
                notes.append(f"{r.label}: images from {name} on not embedded (the page holds at most "
                             f"{MAX_EMBED_BYTES} bytes of images, MAX_EMBED_BYTES)")
                break
            budget -= size
            frames.append({"name": name, "src": uri})
        run_docs.append({"label": r.label, "values": dict(r.values), "frames": frames, "kind": r.source.kind})
    n = len(runs)
    if n <= MAX_ALL_PAIRS_RUNS:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    else:
        pairs = [(0, j) for j in range(1, n)]
        notes.append(f"{n} runs: each is compared with the first ({runs[0].label}) only "
                     f"(every pair up to MAX_ALL_PAIRS_RUNS = {MAX_ALL_PAIRS_RUNS} runs)")
    pair_docs = {f"{i},{j}": pair_summary(diff_sources(runs[i].source, runs[j].source)) for i, j in pairs}
    return {"title": title, "kind": kind, "runs": run_docs, "pairs": pair_docs, "initial": [0, 1],
            "notes": notes}


def render_page(data: dict[str, Any]) -> str:
    """The HTML page for `page_data(...)`: the template with the data embedded as JSON."""
    # '<' escaped so that no value can close the script element ('</script>') or open a comment
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    template = Path(__file__).with_name("compare_page.html").read_text(encoding="utf-8")
    fill = {"TITLE": html.escape(data["title"]), "DATA": payload}
    return re.sub(r"@(TITLE|DATA)@", lambda m: fill[m.group(1)], template)  # one pass: a value is never re-read


def diff_page(a: str | os.PathLike, b: str | os.PathLike) -> str:
    """The comparison page of two sources (run folders, manifests, PNGs, specs, MLflow run ids)."""
    sa, sb = load_source(a, arg="A"), load_source(b, arg="B")
    runs = [PageRun(f"A: {sa.label}", sa), PageRun(f"B: {sb.label}", sb)]
    return render_page(page_data(f"disco-spec diff: {Path(str(a)).name} vs {Path(str(b)).name}", runs))


def write_page(path: str | os.PathLike, page: str) -> Path:
    """Write a page atomically."""
    from ..atomic import atomic_write_bytes

    dest = Path(path)
    atomic_write_bytes(dest, page.encode("utf-8"))
    return dest

"""`disco-spec regress SPECS... --golden DIR`: render each spec and compare with its golden manifest.

Golden files, per spec `<stem>` (the spec file name without its suffix):

    DIR/<stem>.manifest.json     the manifest of a reference render (`--update` writes it)
    DIR/<stem>/<output path>     the reference final images, when small (for PSNR off-fingerprint)

Comparison:
* the spec must be the one the golden was made from (same spec hash), with the same models;
* byte-exact pixels when the environment fingerprint (environment.FINGERPRINT_FIELDS: OS, CPU model
  and SIMD flags, torch's CPU capability and thread count, device, GPU, CUDA/cuDNN, determinism/TF32
  settings, torch version) equals the golden's;
* otherwise every final image must come within `psnr_threshold` dB of the golden image (default 60),
  and the report says that the environment differs, and how.

A JUnit XML report (one testcase per spec) can be written for CI.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .. import errors
from .outputs import compare_images
from .compare import fmt, model_differences, spec_differences
from ..record.environment import fingerprint_differences
from ..record.manifest import finalize_run, load_manifest, write_manifest

# Off-fingerprint threshold for the project's CPU goldens. One grey level on every pixel is 48.13 dB
# (10·log10(255²/1)), and a one-line guidance mistake (the LPIPS sign) landed at 50 dB; the same code on
# another CPU lands at 67-89 dB (tiny 64×64 renders, 3-frame animation included). GPU runners pass
# --psnr-threshold (runner/regress.sh: $PSNR_DB) for goldens made on another device.
DEFAULT_PSNR_DB = 60.0
MAX_GOLDEN_IMAGE_BYTES = 256 * 1024  # golden images above this size are not stored (the manifest still is)


@dataclass
class RegressCase:
    spec: str
    name: str
    status: str = "passed"  # "passed" | "failed" | "error" | "updated"
    mode: str | None = None  # "byte-exact" | "psnr" | "update"
    messages: list[str] = field(default_factory=list)  # the failure reasons (or what --update wrote)
    details: list[str] = field(default_factory=list)  # per-output lines, environment notes
    seconds: float = 0.0

    def fail(self, msg: str) -> None:
        self.status = "failed" if self.status != "error" else self.status
        self.messages.append(msg)


@dataclass
class RegressReport:
    cases: list[RegressCase] = field(default_factory=list)
    golden_dir: str = ""
    psnr_threshold: float = DEFAULT_PSNR_DB

    @property
    def ok(self) -> bool:
        return all(c.status in ("passed", "updated") for c in self.cases)

    def to_text(self) -> str:
        lines = []
        for c in self.cases:
            head = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "updated": "UPDATED"}[c.status]
            mode = f" [{c.mode}]" if c.mode else ""
            lines.append(f"{head} {c.name}{mode} ({c.spec}, {c.seconds:.1f} s)")
            lines.extend(f"  {m}" for m in c.messages)
            lines.extend(f"  {d}" for d in c.details)
        n_bad = sum(c.status in ("failed", "error") for c in self.cases)
        lines.append(f"{len(self.cases) - n_bad} of {len(self.cases)} spec(s) ok" if n_bad else
                     f"all {len(self.cases)} spec(s) ok")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "golden_dir": self.golden_dir, "psnr_threshold": self.psnr_threshold,
                "cases": [c.__dict__ for c in self.cases]}


def golden_manifest_path(golden_dir: str | os.PathLike, spec: str | os.PathLike) -> Path:
    return Path(golden_dir) / f"{Path(spec).stem}.manifest.json"


def golden_image_dir(golden_dir: str | os.PathLike, spec: str | os.PathLike) -> Path:
    return Path(golden_dir) / Path(spec).stem


def _render(spec: Path, run_dir: Path, progress: bool) -> dict[str, Any]:
    from ..run.renderer import render

    result = render(spec, run_dir=run_dir, progress=progress, cache=False)  # regress renders, never serves
    return getattr(result, "manifest", None) or finalize_run(result, spec_dir=str(spec.resolve().parent))


def _update(case: RegressCase, spec: Path, golden_dir: Path, manifest: dict[str, Any], run_dir: Path) -> None:
    golden_dir.mkdir(parents=True, exist_ok=True)
    m = dict(manifest)
    # Nothing about where the reference render ran is needed to compare with it.
    m["volatile"] = {"created_utc": manifest.get("volatile", {}).get("created_utc"),
                     "golden_of": spec.name}
    target = golden_manifest_path(golden_dir, spec)
    write_manifest(target, m)
    case.messages.append(f"wrote {target} (manifest {manifest['id'][:16]}…)")
    img_dir = golden_image_dir(golden_dir, spec)
    if img_dir.is_dir():
        shutil.rmtree(img_dir)
    for o in manifest["hashed"]["outputs"]:
        if o["kind"] != "image":
            continue
        src = run_dir / o["path"]
        if src.stat().st_size > MAX_GOLDEN_IMAGE_BYTES:
            case.details.append(f"{o['path']}: {src.stat().st_size} bytes, not stored (PSNR comparison off-fingerprint "
                                "will not be possible)")
            continue
        dest = img_dir / o["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        case.messages.append(f"wrote {dest}")


def compare_with_golden(spec: str | os.PathLike, golden_dir: str | os.PathLike, manifest: dict[str, Any],
                        run_dir: str | os.PathLike, *, psnr_threshold: float = DEFAULT_PSNR_DB,
                        diff_dir: str | os.PathLike | None = None) -> RegressCase:
    """Compare a finished render (its manifest and run folder) with the golden files of `spec`."""
    case = RegressCase(spec=str(spec), name=Path(spec).stem)
    _compare(case, Path(spec), Path(golden_dir), manifest, Path(run_dir), psnr_threshold,
             Path(diff_dir) if diff_dir is not None else None)
    return case


def _compare(case: RegressCase, spec: Path, golden_dir: Path, manifest: dict[str, Any], run_dir: Path,
             threshold: float, diff_dir: Path | None) -> None:
    gpath = golden_manifest_path(golden_dir, spec)
    if not gpath.is_file():
        case.fail(f"no golden manifest {gpath}: run with --update to create it")
        return
    golden = load_manifest(gpath)
    gh, nh = golden["hashed"], manifest["hashed"]
    if gh.get("spec_sha256") != nh.get("spec_sha256"):
        changes = spec_differences(gh.get("spec") or {}, nh.get("spec") or {})
        listed = "; ".join(c.text() for c in changes[:10]) + (" …" if len(changes) > 10 else "")
        case.fail(f"the spec differs from the golden's (golden → now): {listed or 'spec hash differs'}")
    for c in model_differences(gh.get("models") or [], nh.get("models") or []):
        case.fail(f"model differs from the golden's: {c.text()}")
    fp = fingerprint_differences(gh, nh)
    case.mode = "psnr" if fp else "byte-exact"
    if fp:
        case.details.append(
            "environment differs from the golden's, so outputs are compared within PSNR ≥ "
            f"{threshold:g} dB instead of byte for byte: "
            + "; ".join(f"{k.split('.', 1)[1] if k.startswith('environment.') else k}: {fmt(a, 40)} → {fmt(b, 40)}"
                        for k, a, b in fp)
        )
    else:
        case.details.append("environment fingerprint matches the golden's: outputs must be byte-identical (pixels)")
    now = {o["path"]: o for o in nh["outputs"]}
    img_dir = golden_image_dir(golden_dir, spec)
    for g in gh["outputs"]:
        path = g["path"]
        o = now.get(path)
        if o is None:
            case.fail(f"{path}: in the golden, not written now")
            continue
        if o["pixels_sha256"] == g["pixels_sha256"]:
            case.details.append(f"{path}: identical")
            continue
        gfile = img_dir / path
        r = None
        if gfile.is_file() and (run_dir / path).is_file():
            target = None
            if diff_dir is not None:
                target = diff_dir / f"{spec.stem}__{Path(path).stem}.diff.png"
            r = compare_images(gfile, run_dir / path, target)
        measured = ""
        if r is not None and r["comparable"]:
            measured = f"PSNR {r['psnr']:.2f} dB, max abs diff {r['max_abs_diff']}"
            if r["diff_image"]:
                measured += f", difference image {r['diff_image']}"
        if not fp:
            case.fail(f"{path}: pixels differ from the golden's in the same environment (byte-exact expected)"
                      + (f": {measured}" if measured else ""))
        elif g["kind"] != "image":
            case.details.append(f"{path}: differs ({g['kind']}: not compared off-fingerprint)")
        elif r is None:
            case.fail(f"{path}: differs, and no golden image ({gfile}) to measure how much")
        elif not r["comparable"]:
            case.fail(f"{path}: {r['note']}")
        elif r["psnr"] >= threshold:
            psnr = "∞" if math.isinf(r["psnr"]) else f"{r['psnr']:.2f}"
            case.details.append(f"{path}: within tolerance (PSNR {psnr} dB ≥ {threshold:g}, "
                                f"max abs diff {r['max_abs_diff']})")
        else:
            case.fail(f"{path}: PSNR {r['psnr']:.2f} dB below the threshold {threshold:g} dB ({measured})")
    for path in now:
        if path not in {g["path"] for g in gh["outputs"]}:
            case.fail(f"{path}: written now, not in the golden")


def regress(
    specs: Sequence[str | os.PathLike],
    golden_dir: str | os.PathLike,
    *,
    update: bool = False,
    junit: str | os.PathLike | None = None,
    psnr_threshold: float = DEFAULT_PSNR_DB,
    out: str | os.PathLike | None = None,
    progress: bool = False,
) -> RegressReport:
    """Render each spec and compare with DIR/<stem>.manifest.json (or write it, with `update`).

    `out`: keep the renders (and difference images) under this folder instead of a temporary one.
    """
    from ..spec.load import load_spec

    if not specs:
        raise errors.SpecError("SPECS", [("SPECS", "give at least one spec file")])
    if not (psnr_threshold > 0 and math.isfinite(psnr_threshold)):
        raise errors.SpecError("--psnr-threshold", [("--psnr-threshold", f"must be a positive number of dB (got {psnr_threshold})")])
    paths = [Path(s) for s in specs]
    stems: dict[str, Path] = {}
    for p in paths:
        load_spec(p)  # bad input stops everything before any render (exit 2)
        if p.stem in stems and stems[p.stem].resolve() != p.resolve():
            raise errors.SpecError("SPECS", [(str(p), f"two specs share the golden name {p.stem!r} ({stems[p.stem]})")])
        stems[p.stem] = p
    gdir = Path(golden_dir)
    if not update and not gdir.is_dir():
        raise errors.SpecError("--golden", [("--golden", f"{gdir}: no such folder (use --update to create it)")])

    report = RegressReport(golden_dir=str(gdir), psnr_threshold=psnr_threshold)
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="disco-spec-regress-")
        base = Path(tmp.name)
    else:
        base = Path(out)
        base.mkdir(parents=True, exist_ok=True)
    try:
        for p in paths:
            case = RegressCase(spec=str(p), name=p.stem)
            report.cases.append(case)
            start = time.perf_counter()
            run_dir = base / p.stem
            if run_dir.exists():
                shutil.rmtree(run_dir)
            try:
                manifest = _render(p, run_dir, progress)
                if update:
                    case.status, case.mode = "updated", "update"
                    _update(case, p, gdir, manifest, run_dir)
                else:
                    _compare(case, p, gdir, manifest, run_dir, psnr_threshold, base if out is not None else None)
            except errors.DiscoSpecError as exc:
                case.status = "error"
                case.messages.append(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - a crash (CUDA out of memory, a kernel error) fails this
                # spec only: its JUnit case carries the error and the traceback, the other specs still render
                case.status = "error"
                case.messages.append(f"render crashed: {type(exc).__name__}: {exc}")
                case.details.append(traceback.format_exc())
            case.seconds = time.perf_counter() - start
    finally:
        if tmp is not None:
            tmp.cleanup()
    if junit is not None:
        write_junit(report, junit)
    return report


def write_junit(report: RegressReport, path: str | os.PathLike) -> Path:
    """JUnit XML: one <testcase> per spec; <failure>/<error> with the reasons; details in <system-out>."""
    failures = sum(c.status == "failed" for c in report.cases)
    errs = sum(c.status == "error" for c in report.cases)
    total = sum(c.seconds for c in report.cases)
    suites = ET.Element("testsuites", name="disco-spec regress", tests=str(len(report.cases)),
                        failures=str(failures), errors=str(errs), time=f"{total:.3f}")
    suite = ET.SubElement(suites, "testsuite", name="disco-spec regress", tests=str(len(report.cases)),
                          failures=str(failures), errors=str(errs), skipped="0", time=f"{total:.3f}")
    for c in report.cases:
        tc = ET.SubElement(suite, "testcase", classname="disco_spec.regress", name=c.name, file=c.spec,
                           time=f"{c.seconds:.3f}")
        if c.status in ("failed", "error"):
            el = ET.SubElement(tc, "failure" if c.status == "failed" else "error",
                               message=c.messages[0] if c.messages else c.status,
                               type="RegressionFailure" if c.status == "failed" else "RenderError")
            el.text = "\n".join(c.messages)
        out_lines = ([f"mode: {c.mode}"] if c.mode else []) + c.details + (c.messages if c.status == "updated" else [])
        if out_lines:
            ET.SubElement(tc, "system-out").text = "\n".join(out_lines)
    ET.indent(suites)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(p, encoding="utf-8", xml_declaration=True)
    return p


__all__ = ["DEFAULT_PSNR_DB", "RegressCase", "RegressReport", "compare_with_golden", "golden_manifest_path", "regress",
           "write_junit"]

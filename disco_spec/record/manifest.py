"""The run manifest: what was rendered, from what, with what, where, and the hash of every output.

`manifest.json` is written last in every run folder (atomically), as canonical JSON (RFC 8785, the
`rfc8785` package). Its id is the SHA-256 of the canonical form of its `hashed` part; everything that
changes from one identical render to the next (timings, timestamps, hostname, folders, file paths)
lives outside it, so two renders of one spec on one machine get the same id:

    {
      "manifest_version": 1,
      "id": sha256(rfc8785(hashed)),
      "hashed": {
        "manifest_version": 1,
        "spec": {...}, "spec_sha256": "...",          # the spec as rendered (concrete seed), canonical
        "plan_sha256": "...", "items": [0, 1, ...],    # plan hash, plan items rendered
        "models": [{role, name, sha256, size, source_url}],
        "code": {disco_spec, git_commit, git_dirty},
        "packages": {torch, torchvision, open_clip, guided_diffusion, numpy, pillow, opencv, lpips, mlflow},
        "environment": {python, os, cpu, threads, device, gpu, torch, compile, env_vars},
        "outputs": [{path, kind, item, batch_index, frame, seed, pixels_sha256}]
      },
      "files": [{path, sha256, bytes}],                # outputs + spec.json + plan.json, as on disk
      "volatile": {created_utc, hostname, run_dir, spec_dir, seconds, seed_drawn, model_paths}
    }

PNGs carry the manifest id, and the id covers the outputs: so the hashed part records each output's
`pixels_sha256` (decoded pixels + size + mode; the file's SHA-256 for non-images), which the id chunk
does not change, and the file hashes go to the unhashed `files` section, computed after the PNGs got
their id.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..errors import SpecError
from . import environment, pngmeta
from .ids import canonical_bytes, manifest_id, sha256_canonical, spec_sha256  # noqa: F401 - the manifest's ids

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
META_FILES = ("spec.json", "plan.json")  # written by render beside the outputs; listed in `files`


# ---------------------------------------------------------------------------------------------
# Building and writing
# ---------------------------------------------------------------------------------------------


def model_record(w: Any) -> dict[str, Any]:
    return {
        "role": w.role,
        "name": w.name,
        "sha256": w.sha256,
        "size": int(w.size),
        "source_url": w.source_url,
    }


def output_record(run_dir: Path, rec: Any) -> dict[str, Any]:
    return {
        "path": rec.path,
        "kind": rec.kind,
        "item": int(rec.item_index),
        "batch_index": int(rec.batch_index),
        "frame": int(rec.frame),
        "seed": int(rec.seed),
        "pixels_sha256": pngmeta.content_sha256(run_dir / rec.path),
    }


def build_hashed(result: Any) -> dict[str, Any]:
    """The hashed part of a render's manifest (reads the outputs' pixels, nothing else from disk)."""
    run_dir = Path(result.run_dir)
    outputs = sorted((output_record(run_dir, r) for r in result.outputs), key=lambda o: (o["item"], o["path"]))
    return {
        "manifest_version": MANIFEST_VERSION,
        "spec": result.spec_document,
        "spec_sha256": spec_sha256(result.spec_document),
        "plan_sha256": result.plan.sha256(),
        "items": sorted({o["item"] for o in outputs}),
        "models": [model_record(w) for w in result.weights],
        "code": environment.code_version(),
        "packages": environment.package_versions(),
        "environment": environment.capture_environment(str(result.device)),
        "inputs": input_files(run_dir),
        "outputs": outputs,
    }


def input_files(run_dir: Path) -> dict[str, Any]:
    """Input files the render read besides the spec and models (the Video Input source and its frames)."""
    path = run_dir / "inputs.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    # The source's location is machine-specific; its bytes are what the render depends on.
    return {
        "video_init_sha256": doc.get("sha256"),
        "extract_nth_frame": doc.get("extract_nth_frame"),
        "video_frames": [f.get("sha256") for f in doc.get("frames", [])],
    }


def provenance(hashed: Mapping[str, Any]) -> dict[str, Any]:
    """What a PNG carries of its manifest besides the spec: models, code, packages, environment."""
    keys = ("manifest_version", "spec_sha256", "plan_sha256", "models", "code", "packages", "environment")
    return {k: hashed[k] for k in keys if k in hashed}


def file_entry(run_dir: Path, rel: str) -> dict[str, Any]:
    p = run_dir / rel
    return {"path": rel, "sha256": pngmeta.file_sha256(p), "bytes": p.stat().st_size}


def finalize_run(result: Any, *, spec_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Build the manifest of a finished render, stamp its id into every final PNG, write manifest.json.

    Steps: hash every output's pixels → hashed part → id; add the `disco-spec:manifest-id` and
    `disco-spec:provenance` text chunks to every final PNG (atomic rewrite, other chunks kept, pixels
    untouched); hash the files; write `manifest.json` atomically, last. `result.outputs` records are
    replaced by ones with the final file sha256/bytes, and `result.manifest` is set to the manifest,
    which is also returned.
    """
    run_dir = Path(result.run_dir)
    hashed = build_hashed(result)
    mid = manifest_id(hashed)
    prov = canonical_bytes(provenance(hashed)).decode("utf-8")
    for rec in result.outputs:
        p = run_dir / rec.path
        if rec.kind == "image" and pngmeta.is_png(p):
            pngmeta.set_text(p, {pngmeta.KEY_MANIFEST_ID: mid, pngmeta.KEY_PROVENANCE: prov})

    files = [file_entry(run_dir, rel) for rel in META_FILES if (run_dir / rel).is_file()]
    by_path: dict[str, dict[str, Any]] = {}
    for rec in result.outputs:
        if rec.path not in by_path:
            by_path[rec.path] = file_entry(run_dir, rec.path)
    files += [by_path[p] for p in sorted(by_path)]
    # Observers' on_end sees the final bytes (the id chunk changed them).
    result.outputs[:] = [
        dataclasses.replace(r, sha256=by_path[r.path]["sha256"], bytes=by_path[r.path]["bytes"])
        for r in result.outputs
    ]

    volatile = {
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **environment.volatile_environment(),
        "run_dir": str(run_dir.resolve()),
        "spec_dir": str(Path(spec_dir).resolve()) if spec_dir is not None else None,
        "seconds": round(float(getattr(result, "seconds", 0.0) or 0.0), 3),
        "seed_drawn": bool(getattr(result, "seed_drawn", False)),
        "model_paths": [{"role": w.role, "name": w.name, "path": str(w.path)} for w in result.weights],
    }
    manifest = {"manifest_version": MANIFEST_VERSION, "id": mid, "hashed": hashed, "files": files, "volatile": volatile}
    write_manifest(run_dir / MANIFEST_NAME, manifest)
    try:
        result.manifest = manifest
    except (AttributeError, dataclasses.FrozenInstanceError):  # pragma: no cover - a frozen result type
        pass
    return manifest


def write_manifest(path: str | os.PathLike, manifest: Mapping[str, Any]) -> Path:
    path = Path(path)
    pngmeta.atomic_write(path, canonical_bytes(dict(manifest)) + b"\n")
    return path


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def looks_like_manifest(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("hashed"), dict) and isinstance(doc.get("id"), str)


def load_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read a manifest file (or the manifest.json of a run folder); bad input raises SpecError (exit 2)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{p}: cannot read: {exc.strerror or exc}", [(str(p), f"cannot read: {exc.strerror or exc}")]) from None
    except ValueError as exc:
        raise SpecError(f"{p}: not JSON: {exc}", [(str(p), f"not a manifest (invalid JSON: {exc})")]) from None
    if not looks_like_manifest(doc):
        raise SpecError(f"{p}: not a disco-spec manifest", [(str(p), "not a disco-spec manifest (no `id`/`hashed`)")])
    version = doc.get("manifest_version")
    if version != MANIFEST_VERSION:
        raise SpecError(
            f"{p}: manifest version {version!r}",
            [(str(p), f"manifest version {version!r} is not supported (this build reads {MANIFEST_VERSION})")],
        )
    return doc


def id_matches(manifest: Mapping[str, Any]) -> bool:
    """Whether the manifest's id still matches its hashed part (False: the hashed part was edited)."""
    return manifest_id(manifest) == manifest.get("id")


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    run_dir: str
    manifest_id: str | None
    checked: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, what is wrong)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir, "manifest_id": self.manifest_id, "ok": self.ok, "checked": self.checked,
            "problems": [{"path": p, "problem": m} for p, m in self.problems],
        }

    def to_text(self) -> str:
        lines = [f"{p}: {m}" for p, m in self.problems]
        if self.ok:
            lines.append(f"{self.run_dir}: ok ({self.checked} files match manifest {self.manifest_id})")
        else:
            lines.append(f"{self.run_dir}: {len(self.problems)} problem(s) in {self.checked} files checked")
        return "\n".join(lines)


def verify_run(run_dir: str | os.PathLike) -> VerifyReport:
    """Check every file a run's manifest lists (size and SHA-256); name each one changed or missing."""
    rd = Path(run_dir)
    if not rd.is_dir():
        raise SpecError(f"{rd}: not a folder", [(str(rd), "not a run folder (no such folder)")])
    if not (rd / MANIFEST_NAME).is_file():
        raise SpecError(f"{rd}: no manifest", [(str(rd), f"no {MANIFEST_NAME} here: not a finished run folder")])
    m = load_manifest(rd / MANIFEST_NAME)
    report = VerifyReport(run_dir=str(rd), manifest_id=m.get("id"))
    if not id_matches(m):
        report.problems.append(
            (MANIFEST_NAME, f"edited: its hashed part hashes to {manifest_id(m)}, not to its id {m.get('id')}")
        )
    for f in m.get("files") or []:
        rel = f.get("path")
        if not isinstance(rel, str):
            continue
        report.checked += 1
        p = rd / rel
        if not p.is_file():
            report.problems.append((rel, "missing"))
            continue
        size = p.stat().st_size
        sha = pngmeta.file_sha256(p)
        if sha != f.get("sha256"):
            detail = f"changed: sha256 {sha} (manifest: {f.get('sha256')})"
            if size != f.get("bytes"):
                detail += f", {size} bytes (manifest: {f.get('bytes')})"
            report.problems.append((rel, detail))
    return report


# ---------------------------------------------------------------------------------------------
# Sources: what `rebuild` and `diff` accept
# ---------------------------------------------------------------------------------------------

SourceResolver = Callable[[str], "str | os.PathLike | None"]
_RESOLVERS: list[SourceResolver] = []


def register_source_resolver(fn: SourceResolver) -> SourceResolver:
    """Teach `rebuild`/`diff` a new kind of source (e.g. an MLflow run id).

    `fn(source)` is called with the argument as typed when it is not an existing file or folder; it
    returns a local path (a manifest file, a run folder or a PNG, e.g. downloaded artifacts) or None
    when the source is not one of its kind. Usable as a decorator; returns `fn`.
    """
    if fn not in _RESOLVERS:
        _RESOLVERS.append(fn)
    return fn


def unregister_source_resolver(fn: SourceResolver) -> None:
    if fn in _RESOLVERS:
        _RESOLVERS.remove(fn)


@dataclass
class Source:
    """A spec, manifest, run folder or PNG, read into what rebuild and diff need."""

    kind: str  # "spec" | "manifest" | "run" | "png"
    path: Path
    spec_document: dict[str, Any]
    manifest: dict[str, Any] | None = None  # the whole manifest when known
    hashed: dict[str, Any] | None = None  # its hashed part (for a lone PNG: spec + provenance)
    run_dir: Path | None = None  # where the manifest's output files are
    item: int | None = None  # a PNG's plan item
    png: dict[str, Any] | None = None  # pngmeta.png_info of a PNG source
    spec_dir: str | None = None

    @property
    def label(self) -> str:
        mid = (self.manifest or {}).get("id") or (self.png or {}).get("manifest_id")
        return f"{self.path} ({self.kind}" + (f", manifest {mid[:12]}" if mid else "") + ")"

    def spec(self) -> Any:
        from ..spec.load import validate_document

        return validate_document(dict(self.spec_document))

    def plan(self) -> Any:
        from ..plan.resolve import resolve_plan, with_concrete_seed

        spec, _ = with_concrete_seed(self.spec(), draw=0)
        return resolve_plan(spec)

    def output_files(self) -> dict[str, Path]:
        """Output path (as in the manifest) -> file on disk, for outputs that exist."""
        if self.kind == "png":
            name = self._png_output_name()
            return {name: self.path} if name else {}
        if self.run_dir is None or self.hashed is None:
            return {}
        out = {}
        for o in self.hashed.get("outputs") or []:
            p = self.run_dir / o["path"]
            if p.is_file():
                out[o["path"]] = p
        return out

    def output_records(self) -> list[dict[str, Any]]:
        """The hashed output records (for a lone PNG: one record built from the PNG itself)."""
        if self.kind == "png" and self.manifest is None:
            name = self._png_output_name() or self.path.name
            info = self.png or {}
            return [{"path": name, "kind": "image", "item": info.get("item"), "batch_index": info.get("batch_index"),
                     "frame": info.get("frame"), "seed": info.get("seed"), "pixels_sha256": info.get("pixels_sha256")}]
        if self.kind == "png" and self.hashed is not None:
            name = self._png_output_name()
            return [o for o in self.hashed.get("outputs") or [] if o["path"] == name]
        return list((self.hashed or {}).get("outputs") or [])

    def _png_output_name(self) -> str | None:
        if self.item is None:
            return None
        try:
            plan = self.plan()
        except SpecError:
            return None
        return plan.items[self.item].output if 0 <= self.item < plan.n_items else None


def _bad(path: str, why: str) -> SpecError:
    return SpecError(f"{path}: {why}", [(path, why)])


def load_source(source: str | os.PathLike, *, arg: str = "SOURCE") -> Source:
    """Read a spec file, manifest file, run folder or PNG (or anything a registered resolver maps to one)."""
    p = Path(source)
    if not p.exists():
        for fn in _RESOLVERS:
            got = fn(str(source))
            if got is not None:
                return load_source(got, arg=arg)
        raise _bad(str(source), f"{arg}: no such file or folder")
    if p.is_dir():
        if not (p / MANIFEST_NAME).is_file():
            raise _bad(str(p), f"{arg}: no {MANIFEST_NAME} in this folder (not a finished run folder)")
        m = load_manifest(p / MANIFEST_NAME)
        return _from_manifest(m, "run", p, p)
    if pngmeta.is_png(p):
        return _from_png(p)
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = None
        if looks_like_manifest(doc):
            m = load_manifest(p)
            return _from_manifest(m, "manifest", p, p.parent)
    from ..spec.load import load_spec, spec_to_document

    spec = load_spec(p)
    return Source(kind="spec", path=p, spec_document=spec_to_document(spec), spec_dir=str(p.resolve().parent))


def _spec_dir_of(m: Mapping[str, Any], fallback: Path) -> str:
    recorded = (m.get("volatile") or {}).get("spec_dir")
    if recorded and Path(recorded).is_dir():
        return str(recorded)
    return str(fallback.resolve())


def _from_manifest(m: dict[str, Any], kind: str, path: Path, run_dir: Path) -> Source:
    spec = m["hashed"].get("spec")
    if not isinstance(spec, dict):
        raise _bad(str(path), "the manifest has no spec")
    # A manifest copied out of its run folder: outputs are found only if they sit beside it.
    return Source(kind=kind, path=path, spec_document=spec, manifest=m, hashed=m["hashed"], run_dir=run_dir,
                  spec_dir=_spec_dir_of(m, run_dir))


def _from_png(p: Path) -> Source:
    info = pngmeta.png_info(p)
    if not isinstance(info.get("spec"), dict):
        raise _bad(str(p), "this PNG carries no disco-spec metadata (no spec text chunk)")
    src = Source(kind="png", path=p, spec_document=info["spec"], item=info.get("item"), png=info,
                 spec_dir=str(p.resolve().parent))
    beside = p.parent / MANIFEST_NAME
    if info.get("manifest_id") and beside.is_file():
        try:
            m = load_manifest(beside)
        except SpecError:
            m = None
        if m is not None and m.get("id") == info["manifest_id"]:
            src.manifest, src.hashed, src.run_dir = m, m["hashed"], p.parent
            src.spec_dir = _spec_dir_of(m, p.parent)
            return src
    prov = info.get("provenance")
    if isinstance(prov, dict):
        src.hashed = {**prov, "spec": info["spec"]}
    return src


def iter_outputs(manifest: Mapping[str, Any], kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
    kinds = set(kinds) if kinds is not None else None
    return [o for o in manifest["hashed"].get("outputs") or [] if kinds is None or o.get("kind") in kinds]

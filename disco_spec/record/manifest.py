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
        "code": {disco_spec, source_sha256},           # the version and the package's sources, hashed
        "packages": {torch, torchvision, open_clip, guided_diffusion, numpy, pillow, opencv, lpips, mlflow},
        "environment": {python, os, cpu, threads, device, gpu, torch, compile, env_vars},
        "inputs": {files: [{field, source, sha256, bytes}], video_init_sha256, ...},  # files the spec names
        "outputs": [{path, kind, item, batch_index, frame, seed, pixels_sha256}]
      },
      "files": [{path, sha256, bytes}],                # outputs + spec.json + plan.json, as on disk
      "volatile": {created_utc, hostname, code_checkout: {git_commit, git_dirty}, run_dir, spec_dir, seconds,
                   seed_drawn, model_paths, cached_from: [{item, manifest_id, run_dir | mlflow_run_id}]}
    }

PNGs carry the manifest id, and the id covers the outputs: so the hashed part records each output's
`pixels_sha256` (decoded pixels + size + mode; for an mp4 its media without its metadata, mp4meta; the
file's SHA-256 for other outputs), which the stamped id does not change, and the file hashes go to the
unhashed `files` section, computed after the PNGs and mp4s got their id.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from .._version import __version__
from ..errors import SpecError
from ..hashes import file_sha256
from . import environment, mp4meta, pngmeta
from .parameters import KEY_PARAMETERS, parameters_text
from .manifest_schema import check_manifest, read_json_file
from .ids import canonical_bytes, manifest_id, recipe_id, sha256_canonical, spec_sha256  # noqa: F401 - the manifest's ids

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


def output_content_sha256(path: Path) -> str:
    """What identifies an output's content, leaving out what finalize_run stamps into it: the pixels of a PNG
    (its text chunks left out), the media of an mp4 (its metadata left out), else the file's bytes."""
    return mp4meta.media_sha256(path) if mp4meta.is_mp4(path) else pngmeta.content_sha256(path)


def output_record(run_dir: Path, rec: Any) -> dict[str, Any]:
    return {
        "path": rec.path,
        "kind": rec.kind,
        "item": int(rec.item_index),
        "batch_index": int(rec.batch_index),
        "frame": int(rec.frame),
        "seed": int(rec.seed),
        "pixels_sha256": output_content_sha256(run_dir / rec.path),
    }


def build_recipe(result: Any) -> dict[str, Any]:
    """The hashed part of a render's manifest without its outputs: what the render is made from, known once its
    models are loaded and its input files read, before any image is rendered (record.ids.recipe_id hashes it)."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "spec": result.spec_document,
        "spec_sha256": spec_sha256(result.spec_document),
        "plan_sha256": result.plan.sha256(),
        "models": [model_record(w) for w in result.weights],
        "code": environment.code_version(),
        "packages": environment.package_versions(),
        "environment": environment.capture_environment(
            str(result.device), compile=bool((result.spec_document.get("engine") or {}).get("compile", False))),
        "inputs": input_files(Path(result.run_dir), _read_inputs(result)),
    }


def build_hashed(result: Any) -> dict[str, Any]:
    """The hashed part of a render's manifest (reads the outputs' pixels, nothing else from disk)."""
    run_dir = Path(result.run_dir)
    outputs = sorted((output_record(run_dir, r) for r in result.outputs), key=lambda o: (o["item"], o["path"]))
    return {**build_recipe(result), "items": sorted({o["item"] for o in outputs}), "outputs": outputs}


def _read_inputs(result: Any) -> list[dict[str, Any]]:
    store = getattr(result, "inputs", None)  # run.inputs.InputStore (absent for results built by hand)
    return store.manifest_records() if store is not None else []


def input_files(run_dir: Path, read: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Input files the render read besides the spec and models: `files` lists each init image, image prompt
    and input video as {field, source (as the spec names it), sha256, bytes}; Video Input adds the
    source's hash and its extracted frames' hashes. {} when the render read none."""
    files = list(read)
    out: dict[str, Any] = {}
    path = run_dir / "inputs.json"
    if path.exists():
        doc = read_json_file(path)  # the one bounded reader
        if not isinstance(doc, dict):
            raise SpecError(f"{path}: not the inputs record disco-spec writes", [(str(path), "not a JSON object")])
        # The source's location is machine-specific; its bytes are what the render depends on.
        out = {
            "video_init_sha256": doc.get("sha256"),
            "extract_nth_frame": doc.get("extract_nth_frame"),
            "video_frames": [f.get("sha256") for f in doc.get("frames", [])],
        }
        files.append({"field": "video_input.video_init_path", "source": doc.get("video_init_path"),
                      "sha256": doc.get("sha256"), "bytes": doc.get("bytes")})
    if files:
        out["files"] = files
    return out


def provenance(hashed: Mapping[str, Any]) -> dict[str, Any]:
    """What a PNG carries of its manifest besides the spec: models, code, packages, environment."""
    keys = ("manifest_version", "spec_sha256", "plan_sha256", "models", "code", "packages", "environment")
    return {k: hashed[k] for k in keys if k in hashed}


def file_entry(run_dir: Path, rel: str) -> dict[str, Any]:
    p = run_dir / rel
    return {"path": rel, "sha256": file_sha256(p), "bytes": p.stat().st_size}


def finalize_run(result: Any, *, spec_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Build the manifest of a finished render, stamp its id into every final PNG, write manifest.json.

    Steps: hash every output's pixels → hashed part → id; add the `disco-spec:manifest-id`,
    `disco-spec:provenance` and A1111 `parameters` text chunks to every final PNG (atomic rewrite, other
    chunks kept, pixels untouched) and the spec and id to every mp4's metadata (mp4meta.stamp); hash the files; write `manifest.json` atomically, last. `result.outputs` records are
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
            # pixels untouched: the id (which hashes them) holds for the stamped file
            params = parameters_text(result.spec_document, result.plan.items[rec.item_index], hashed["models"],
                                     result.plan.width, result.plan.height, mid, __version__)
            pngmeta.set_text(p, {pngmeta.KEY_MANIFEST_ID: mid, pngmeta.KEY_PROVENANCE: prov,
                                 KEY_PARAMETERS: params}, plain=(KEY_PARAMETERS,))
        elif rec.kind == "video" and mp4meta.is_mp4(p):  # its hash (media_sha256) leaves this metadata out
            spec_json = canonical_bytes(result.spec_document).decode("utf-8")
            mp4meta.stamp(p, mp4meta.video_metadata(spec_json, mid, __version__))

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
    if getattr(result, "cached_from", None):  # where served outputs came from (run.cache): outside the id
        volatile["cached_from"] = list(result.cached_from)
    if getattr(result, "branch", None):  # how the run was produced, not what it holds: outside the id
        manifest["branch"] = result.branch
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
    """Read a manifest file (or the manifest.json of a run folder) and check it against the manifest schema
    (record.manifest_schema): bad input, from wrong types to `..` in a path, raises SpecError (exit 2)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    doc = read_json_file(p)
    if not looks_like_manifest(doc):
        raise SpecError(f"{p}: not a disco-spec manifest", [(str(p), "not a disco-spec manifest (no `id`/`hashed`)")])
    version = doc.get("manifest_version")
    if version != MANIFEST_VERSION:
        raise SpecError(
            f"{p}: manifest version {version!r}",
            [(str(p), f"manifest version {version!r} is not supported (this build reads {MANIFEST_VERSION})")],
        )
    check_manifest(doc, str(p))
    return doc


def id_matches(manifest: Mapping[str, Any]) -> bool:
    """Whether the manifest's id still matches its hashed part (False: the hashed part was edited)."""
    return manifest_id(manifest) == manifest.get("id")


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Sources: what `rebuild` and `diff` accept
# ---------------------------------------------------------------------------------------------


def iter_outputs(manifest: Mapping[str, Any], kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
    kinds = set(kinds) if kinds is not None else None
    return [o for o in manifest["hashed"].get("outputs") or [] if kinds is None or o.get("kind") in kinds]

"""What `rebuild` and `diff` compare: a manifest, a run folder, a spec file or a disco-spec PNG, read as a Source.

Other strings (e.g. an MLflow run id) are mapped to local manifests by registered resolvers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import SpecError
from ..record import pngmeta
from ..record.manifest import MANIFEST_NAME, load_manifest, looks_like_manifest
from ..record.manifest_schema import check_provenance, inside_run_dir, read_json_file


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
            p = inside_run_dir(self.run_dir, o["path"]) if isinstance(o.get("path"), str) else None
            if p is not None and p.is_file():  # a path out of the run folder is never opened
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
        doc = read_json_file(p)  # size and nesting bounded: a 5,000-deep file is a SpecError
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
        check_provenance(prov, f"{p}: provenance")  # from the PNG: untrusted like a manifest
        src.hashed = {**prov, "spec": info["spec"]}
    return src


# ---------------------------------------------------------------------------------------------
# The --out folder of a render: every run folder under it
# ---------------------------------------------------------------------------------------------

RUN_MARKERS = ("spec.json", "run_state.json")  # written at the start of a render; manifest.json at its end
MAX_DEPTH = 4  # {out}/{batch}/run-NNNN, {out}/{batch}/sweep-NNNN/cell-NN, with room for a parent folder


def is_run_folder(path: str | os.PathLike) -> bool:
    """A finished run folder: it holds manifest.json."""
    return (Path(path) / MANIFEST_NAME).is_file()


def find_run_folders(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(finished, unfinished) run folders under `folder` (an --out folder), sorted by relative path.

    A folder with manifest.json is a finished run; one with only what a render writes at its start
    (spec.json, run_state.json) is an unfinished one (interrupted; `render --resume` continues it). Neither is
    searched further (partials/, state/ are parts of it); links are not followed."""
    root = Path(folder)
    finished: list[Path] = []
    unfinished: list[Path] = []
    for here, dirs, files in os.walk(root):
        depth = len(Path(here).relative_to(root).parts)
        if MANIFEST_NAME in files:
            finished.append(Path(here))
            dirs.clear()
        elif any(m in files for m in RUN_MARKERS) and depth > 0:
            unfinished.append(Path(here))
            dirs.clear()
        elif depth >= MAX_DEPTH:
            dirs.clear()
        dirs.sort()
    key = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    return sorted(finished, key=key), sorted(unfinished, key=key)


def out_folder_runs(folder: str | os.PathLike, *, arg: str) -> tuple[list[Path], list[Path]]:
    """find_run_folders, refusing a folder with no run folder under it (exit 2 naming `arg`)."""
    finished, unfinished = find_run_folders(folder)
    if not finished:
        why = (f"{arg}: no {MANIFEST_NAME} here or in any run folder under it (neither a run folder nor a render's "
               "--out folder)"
               + (f"; {len(unfinished)} unfinished (render --resume continues them)" if unfinished else ""))
        raise _bad(str(folder), why)
    return finished, unfinished

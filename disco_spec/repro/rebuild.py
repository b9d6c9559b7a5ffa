"""`disco-spec rebuild SOURCE`: render a manifest, run folder or PNG again and check the bytes agree.

1. Read the source (sources.load_source; a registered resolver may map other strings, e.g. an MLflow
   run id, to a local path).
2. Check that the same weights are available: every model the manifest records is resolved and its
   SHA-256 compared; a different file is refused (ModelError, exit 1) naming the model and both hashes.
3. Render into the given folder (or a temporary one) — only the item of a PNG, or `item` when given.
4. Compare every output's pixel hash with the recorded one. Identical: ok (exit 0). Otherwise the
   report names the environment fields (and code/package versions) that differ between the manifests.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .. import errors
from .compare import Change, context_differences, model_differences
from .outputs import OutputComparison, compare_images
from ..record.environment import fingerprint_differences
from ..record.manifest import MANIFEST_NAME, finalize_run
from ..record.manifest_schema import inside_run_dir
from ..spec.access import InputPolicy
from .sources import Source, load_source, register_source_resolver

__all__ = ["RebuildReport", "check_weights", "rebuild", "rebuild_source", "register_source_resolver"]


@dataclass
class RebuildReport:
    source: str
    run_dir: str | None  # where the rebuild was written (None when it went to a deleted temp folder)
    items: list[int]
    original_id: str | None
    rebuilt_id: str | None
    outputs: list[OutputComparison] = field(default_factory=list)
    models: list[Change] = field(default_factory=list)
    code: list[Change] = field(default_factory=list)
    packages: list[Change] = field(default_factory=list)
    environment: list[Change] = field(default_factory=list)
    fingerprint: list[Change] = field(default_factory=list)  # the environment fields that decide bit-exactness
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.outputs) and all(o.status == "identical" for o in self.outputs) and not self.models

    def to_dict(self) -> dict[str, Any]:
        def ch(cs: list[Change]) -> list[dict[str, Any]]:
            return [{"path": c.path, "a": c.a, "b": c.b} for c in cs]

        return {
            "ok": self.ok, "source": self.source, "run_dir": self.run_dir, "items": self.items,
            "original_id": self.original_id, "rebuilt_id": self.rebuilt_id,
            "outputs": [{"path": o.path, "status": o.status, "psnr": o.psnr if o.psnr is None or o.psnr != float("inf") else None,
                         "max_abs_diff": o.max_abs_diff, "note": o.note} for o in self.outputs],
            "models": ch(self.models), "code": ch(self.code), "packages": ch(self.packages),
            "environment": ch(self.environment), "fingerprint": ch(self.fingerprint), "notes": list(self.notes),
        }

    def to_text(self) -> str:
        lines = [f"rebuilt {self.source} (items {', '.join(map(str, self.items))})"
                 + (f" into {self.run_dir}" if self.run_dir else "")]
        for o in self.outputs:
            lines.append(f"  {o.text()}")
        if self.original_id and self.rebuilt_id:
            same = "same manifest id" if self.original_id == self.rebuilt_id else "manifest id differs"
            lines.append(f"  {same}: {self.original_id[:16]}… → {self.rebuilt_id[:16]}…")
        if self.ok:
            lines.append("identical: every output has the recorded pixels")
            if self.environment or self.packages or self.code:
                lines.append("  (even though these differ:)")
        else:
            lines.append("DIFFERENT: the rebuild does not reproduce the recorded outputs")
        for title, cs in (("models", self.models), ("code", self.code), ("packages", self.packages),
                          ("environment", self.environment)):
            if cs:
                lines.append(f"  {title} that differ (recorded → now):")
                lines.extend(f"    {c.text()}" for c in cs)
        if not self.ok and not (self.environment or self.packages or self.code or self.models):
            lines.append("  no environment, package, code or model difference was recorded: the render is not "
                         "deterministic on this machine, or something outside the manifest changed")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


def _spec_custom_path(spec: Any, role: str, access: InputPolicy) -> Path | None:
    from ..models.resolve import custom_path

    fields = {"diffusion": "diffusion_model", "secondary": "secondary_model", "lpips": "lpips_model"}
    name = fields.get(role)
    ref = getattr(spec.models, name, None) if name else None
    if ref is not None and hasattr(ref, "path"):
        return custom_path(ref, None, access=access, field=f"models.{name}.path")  # SpecError when outside
    return None


REBUILD_HINT = ("pass `--spec-dir DIR` (the spec's folder) or `--allow-path DIR` (or list folders in "
                "$DISCO_SPEC_ALLOW_PATHS) to allow another folder")


def source_policy(source: Source, *, spec_dir: str | os.PathLike | None = None,
                  allow_paths: Iterable[str | os.PathLike] = (), allow_network: bool = False) -> InputPolicy:
    """What a rebuild may read. The source (a manifest, run folder or PNG) may come from a stranger, so the
    folder its manifest records (`volatile.spec_dir`) only says where relative paths resolve; files are read
    from the source's own repository (or folder), the user's `spec_dir` and `allow_paths`."""
    own = source.run_dir if source.run_dir is not None else Path(source.path).parent
    trusted = [own] + ([spec_dir] if spec_dir is not None else [])
    base = spec_dir if spec_dir is not None else (source.spec_dir or own)
    return InputPolicy.for_folders(base, trusted, allow_paths=allow_paths, allow_network=allow_network,
                                   widen_hint=REBUILD_HINT)


def _refuse(role: str, name: str, where: str, recorded: str, actual: str) -> errors.ModelError:
    return errors.ModelError(
        f"cannot rebuild: the {role} model {name} ({where}) is not the one the manifest recorded:\n"
        f"  manifest sha256  {recorded}\n"
        f"  available sha256 {actual}\n"
        "Restore the original file (or fetch the recorded weights) and try again."
    )


def check_weights(source: Source, *, fetch: bool = True, spec_dir: str | None = None,
                  access: InputPolicy | None = None) -> list[dict[str, Any]]:
    """Resolve every model of the source's manifest and compare SHA-256s; refuse (ModelError) on a mismatch.

    Returns one entry per model: {role, name, path, sha256}. Registry models are resolved as a render would
    (generated or downloaded when missing, with `fetch`); other files are looked for where the spec says,
    then where the original render found them — both only inside the folders `access` allows (default:
    source_policy), so a manifest cannot make this hash, or name the hash of, a file elsewhere.
    """
    from ..models.registry import REGISTRY
    from ..models.resolve import resolve_entry
    from ..models.weights import weight_sha256

    hashed = source.hashed or {}
    models = hashed.get("models") or []
    recorded_paths = ((source.manifest or {}).get("volatile") or {}).get("model_paths") or []
    spec = source.spec()
    access = access or source_policy(source, spec_dir=spec_dir)
    checked = []
    for i, m in enumerate(models):
        role, name, want = str(m.get("role")), str(m.get("name")), str(m.get("sha256"))
        entry = REGISTRY.get(name)
        if entry is not None and entry.role == role:
            if entry.pinned and entry.sha256 != want:
                raise _refuse(role, name, "registry entry", want, entry.sha256)
            try:
                w = resolve_entry(entry, fetch=fetch)
            except errors.WeightsHashMismatch as exc:
                raise _refuse(role, name, "cache file", want, exc.actual) from None
            if w.sha256 != want:  # an unpinned entry: the cache file itself must be the recorded one
                raise _refuse(role, name, "cache file", want, w.sha256)
            checked.append({"role": role, "name": name, "path": w.path, "sha256": w.sha256})
            continue
        candidates: list[Path] = []
        p = _spec_custom_path(spec, role, access)
        if p is not None:
            candidates.append(p)
        if i < len(recorded_paths) and recorded_paths[i].get("role") == role and recorded_paths[i].get("path"):
            recorded = access.inside(str(recorded_paths[i]["path"]), f"volatile.model_paths[{i}].path")
            if recorded is not None:  # a recorded path outside the allowed folders is not looked at
                candidates.append(recorded)
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            if name == "custom":
                tried = ", ".join(str(c) for c in candidates) or "(no path known)"
                raise errors.ModelError(f"cannot rebuild: the {role} model file is missing (looked at {tried}); "
                                        f"the manifest recorded sha256 {want}")
            # e.g. an open_clip pretrained tag: the render fetches it; its hash is compared afterwards
            checked.append({"role": role, "name": name, "path": None, "sha256": None})
            continue
        actual = weight_sha256(found)
        if actual != want:
            raise _refuse(role, name, str(found), want, actual)
        checked.append({"role": role, "name": name, "path": str(found), "sha256": actual})
    return checked


# ---------------------------------------------------------------------------------------------
# Rebuild
# ---------------------------------------------------------------------------------------------


def _expected(source: Source, items: list[int]) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """The recorded outputs of `items`, and the files of those that are on disk."""
    if source.kind == "png" and source.manifest is not None and source.run_dir is not None and items != [source.item]:
        # another item than the PNG's own: the manifest beside the PNG knows it
        recs = list(source.manifest["hashed"].get("outputs") or [])
        found = {o["path"]: inside_run_dir(source.run_dir, o["path"]) for o in recs}
        files = {rel: p for rel, p in found.items() if p is not None and p.is_file()}
    else:
        recs, files = source.output_records(), source.output_files()
    return [o for o in recs if o.get("item") in items], files


def rebuild(
    source: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    item: int | None = None,
    fetch: bool = True,
    spec_dir: str | os.PathLike | None = None,
    progress: bool = False,
    allow_paths: Iterable[str | os.PathLike] = (),
    allow_network: bool = False,
) -> RebuildReport:
    """Re-render SOURCE (manifest file, run folder or PNG) and compare every output with the recorded one.

    `out`: the folder to render into (it becomes the run folder; it must not hold a finished run);
    default: a temporary folder, deleted afterwards. `item`: only that plan item (a PNG rebuilds its own).
    Files the spec names are read only inside the folders of source_policy (widened by `allow_paths`),
    URLs only with `allow_network`.
    """
    return rebuild_source(load_source(source), out=out, item=item, fetch=fetch, spec_dir=spec_dir, progress=progress,
                          allow_paths=allow_paths, allow_network=allow_network)


def rebuild_source(
    src: Source,
    *,
    out: str | os.PathLike | None = None,
    item: int | None = None,
    fetch: bool = True,
    spec_dir: str | os.PathLike | None = None,
    progress: bool = False,
    allow_paths: Iterable[str | os.PathLike] = (),
    allow_network: bool = False,
) -> RebuildReport:
    from ..run.renderer import render

    if src.kind == "spec":
        raise errors.SpecError(
            f"{src.path}: a spec has no recorded outputs",
            [(str(src.path), "rebuild needs a manifest, a run folder or a PNG (to render a spec, use `render`)")],
        )
    spec = src.spec()
    sd = str(spec_dir) if spec_dir is not None else src.spec_dir
    plan = src.plan()
    if item is not None:
        if not 0 <= item < plan.n_items:
            raise errors.SpecError("--item", [("--item", f"item {item} does not exist (the plan has {plan.n_items})")])
        items = [item]
    elif src.kind == "png" and src.item is not None:
        items = [src.item]
    else:
        items = list((src.hashed or {}).get("items") or range(plan.n_items))
    expected, files_a = _expected(src, items)
    if not expected:
        raise errors.SpecError("--item", [("--item", f"the source recorded no output for item(s) {items}")])

    notes: list[str] = []
    recorded_plan = (src.hashed or {}).get("plan_sha256") or (src.png or {}).get("plan_sha256")
    if recorded_plan and recorded_plan != plan.sha256():
        notes.append(f"the plan resolves differently with this disco-spec (plan sha256 {recorded_plan[:16]}… → "
                     f"{plan.sha256()[:16]}…): the code changed how specs are read")
    access = source_policy(src, spec_dir=spec_dir, allow_paths=allow_paths, allow_network=allow_network)
    if src.hashed and src.hashed.get("models"):
        check_weights(src, fetch=fetch, access=access)
    else:
        notes.append("no model hashes recorded with this source: the spec's own pins are checked while rendering")

    tmp: tempfile.TemporaryDirectory[str] | None = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="disco-spec-rebuild-")
        run_dir = Path(tmp.name) / "run"
    else:
        run_dir = Path(out)
        if (run_dir / MANIFEST_NAME).exists():
            raise errors.SpecError("--out", [("--out", f"{run_dir} already holds a finished run ({MANIFEST_NAME}); "
                                                        "give an empty or new folder")])
    try:
        result = render(spec, run_dir=run_dir, items=items, progress=progress, spec_dir=sd, fetch=fetch, access=access,
                        cache=False)  # a rebuild checks what renders now: never served from the render cache
        new = getattr(result, "manifest", None) or finalize_run(result, spec_dir=sd)
        report = RebuildReport(
            source=str(src.path), run_dir=None if tmp else str(run_dir), items=items,
            original_id=(src.manifest or {}).get("id") or (src.png or {}).get("manifest_id"), rebuilt_id=new["id"],
            notes=notes,
        )
        got = {o["path"]: o for o in new["hashed"]["outputs"]}
        for rec in expected:
            path = rec["path"]
            mine = got.get(path)
            if mine is None:
                report.outputs.append(OutputComparison(path, "only in A", note="the rebuild did not write it"))
                continue
            if mine["pixels_sha256"] == rec.get("pixels_sha256"):
                report.outputs.append(OutputComparison(path, "identical"))
                continue
            cmp = OutputComparison(path, "differs")
            if path in files_a and rec.get("kind") in ("image", "partial"):
                r = compare_images(files_a[path], run_dir / path)
                if r["comparable"] and r["max_abs_diff"] == 0:
                    cmp.max_abs_diff, cmp.note = 0, "same RGB values, different pixel format or size"
                elif r["comparable"]:
                    cmp.psnr, cmp.max_abs_diff = r["psnr"], r["max_abs_diff"]
                else:
                    cmp.note = r["note"]
            report.outputs.append(cmp)
        if src.hashed:
            report.models = model_differences(src.hashed.get("models") or [], new["hashed"]["models"]) if src.hashed.get("models") else []
            ctx = context_differences(src.hashed, new["hashed"])
            report.code, report.packages, report.environment = ctx["code"], ctx["packages"], ctx["environment"]
            if src.hashed.get("environment"):
                report.fingerprint = [Change(p, a, b) for p, a, b in fingerprint_differences(src.hashed, new["hashed"])]
        else:
            report.notes.append("environment of the original render unknown (a PNG without provenance)")
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()

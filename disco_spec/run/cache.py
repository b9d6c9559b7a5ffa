"""The render cache: outputs already rendered from the same recipe are served instead of rendered again.

A render's *recipe id* (record.ids.recipe_id) hashes everything its manifest id covers except the outputs: the
spec and plan, every model's SHA-256, the code, the packages, the environment (device, threads, determinism
settings) and the input files. On a deterministic stack one recipe gives one set of images, so a finished
run's outputs can stand in for a new render of the same recipe. Layout under $DISCO_SPEC_CACHE:

    renders/{recipe_id}/item-{i:04d}/     a still's plan item i: its final image and partials
    renders/{recipe_id}/frames-{sel}/     an animation: every selected frame at once (sel: hash of the selection)
        manifest.json                     the manifest of the run the files came from (its `files` and
        {run-folder paths}                `outputs` hashes are what a hit is verified against)
        frames.jsonl                      that run's journal: the items' step checksums, copied on a hit
        source.json                       {"mlflow_run_id": …} for an entry downloaded from an MLflow store

A frame of an animation starts from the frames before it (their images and the loop's state), so an animation
is served whole or rendered whole: serving frame f alone would need that state for frame f+1 too.

Served only when every file's SHA-256 equals the cached manifest's `files` entry and its pixels hash equals the
manifest's `pixels_sha256` (a corrupted or edited entry is a miss: the item is rendered and the entry replaced).
A hit is written into the run folder through disco_spec.atomic (the run folder's one writer); the run's manifest
records `volatile.cached_from` (outside the id, which equals a fresh render's). Entries are written to a temp
folder and renamed into place; the cache is pruned, oldest used first, past $DISCO_SPEC_RENDER_CACHE_MAX_BYTES.

Besides the local folder, a render's observers may offer a shared store: an observer with a
`find_cached_render(recipe_id, item, dest)` method (tracking.tracker.MlflowTracker for a tracked render,
tracking.shared_cache.SharedCacheLookup for a sweep cell: a finished MLflow run tagged with the recipe id) downloads
a run folder into `dest`; it is verified the same way, served, and stored into the local cache (verified again in
its temp folder before it is renamed into place), so the next render of the recipe here needs no download.
Never consulted: `cache=False` (--no-cache, rebuild, regress, doctor, cache verify), a resumed or branched run,
a random seed drawn for this render, a dirty working tree (volatile.code_checkout.git_dirty), and any render
while $DISCO_SPEC_RENDER_CACHE is "off" (the test suite sets it: its renders check the engine, not the cache).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from ..atomic import atomic_write_bytes, make_dirs
from ..errors import SpecError
from ..hashes import bytes_sha256, file_sha256
from ..record.ids import recipe_id
from ..record.manifest_schema import inside_run_dir

if TYPE_CHECKING:
    from ..plan.resolve import PlanItem
    from .records import Observer, OutputRecord, RenderResult

RENDERS_DIR = "renders"
MANIFEST = "manifest.json"
JOURNAL = "frames.jsonl"  # run.journal.FRAMES_LOG: kept for each item's step checksums
SOURCE = "source.json"  # an entry stored from a download: the MLflow run it came from
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")  # an MLflow run id (the only thing taken from source.json)
MAX_BYTES_ENV = "DISCO_SPEC_RENDER_CACHE_MAX_BYTES"
OFF_ENV = "DISCO_SPEC_RENDER_CACHE"  # "off": no render of this process (or its children) uses the cache
DEFAULT_MAX_BYTES = 4 * 2**30


def renders_root() -> Path:
    from ..models.weights import cache_dir

    return cache_dir() / RENDERS_DIR


def max_bytes() -> int:
    value = os.environ.get(MAX_BYTES_ENV, "")
    try:
        return max(0, int(value)) if value else DEFAULT_MAX_BYTES
    except ValueError:
        raise SpecError(f"{MAX_BYTES_ENV}={value!r}", [(MAX_BYTES_ENV, "expected a number of bytes")]) from None


def checkout_dirty() -> bool:
    """Whether the code runs from a git working tree with uncommitted changes (never served from the cache)."""
    from ..record.environment import code_checkout

    return code_checkout().get("git_dirty") is True


def item_key(item: int) -> str:
    return f"item-{item:04d}"


def frames_key(selected: Sequence[int]) -> str:
    return "frames-" + bytes_sha256(",".join(map(str, selected)).encode())[:16]


# ---------------------------------------------------------------------------------------------
# Reading and verifying an entry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedOutputs:
    """Verified outputs of one entry: where they are, the manifest they came from, and the records served."""

    folder: Path
    manifest: dict[str, Any]
    outputs: list[dict[str, Any]]  # the manifest's `hashed.outputs` records served
    source: dict[str, Any]  # {manifest_id, run_dir} or {manifest_id, mlflow_run_id}: volatile.cached_from
    download: Path | None = None  # a shared store's download (removed once served), None: a local entry


def verify_entry(folder: Path, recipe: str | None, want: Callable[[dict[str, Any]], bool],
                 source: dict[str, Any] | None = None) -> CachedOutputs | None:
    """The entry's outputs chosen by `want` if its manifest has recipe id `recipe` (None: any) and every such
    file's bytes and pixels are the ones that manifest recorded; else None (a miss, never an error)."""
    from ..record.manifest import id_matches, iter_outputs, load_manifest, output_content_sha256

    try:
        manifest = load_manifest(folder / MANIFEST)  # the one bounded reader, schema-checked
    except (SpecError, OSError):
        return None
    if not id_matches(manifest) or (recipe is not None and recipe_id(manifest) != recipe):
        return None
    outputs = [o for o in iter_outputs(manifest) if want(o)]
    files = {f["path"]: f["sha256"] for f in manifest.get("files") or []}
    if not outputs:
        return None
    try:
        for o in outputs:
            path = inside_run_dir(folder, o["path"])
            if path is None or not path.is_file() or file_sha256(path) != files.get(o["path"]) \
                    or output_content_sha256(path) != o["pixels_sha256"]:
                return None
    except (OSError, SpecError, ValueError):
        return None
    src = dict(source or _entry_source(folder) or {"run_dir": (manifest.get("volatile") or {}).get("run_dir")})
    return CachedOutputs(folder=folder, manifest=manifest, outputs=outputs,
                         source={"manifest_id": manifest["id"], **src})


def _entry_source(folder: Path) -> dict[str, str] | None:
    """{mlflow_run_id} of an entry stored from an MLflow download (its source.json), else None. The file is
    read like any cache file: bounded, and only a run id of hex digits is taken from it."""
    from ..spec.untrusted_json import read_file

    path = folder / SOURCE
    if not path.is_file():
        return None
    try:
        doc = read_file(str(path), max_bytes=4096)
    except (SpecError, OSError):
        return None
    rid = doc.get("mlflow_run_id") if isinstance(doc, dict) else None
    return {"mlflow_run_id": rid} if isinstance(rid, str) and _RUN_ID.match(rid) else None


# ---------------------------------------------------------------------------------------------
# One render's use of the cache
# ---------------------------------------------------------------------------------------------


@dataclass
class RenderCache:
    """The cache as one render sees it: looked up per still item (or once for an animation), filled at the end.

    `read`: hits are served (False for a random seed drawn now: nothing can match yet, and the issue's rule
    keeps such a render off the cache). `write`: fresh outputs are stored once the manifest is written.
    """

    root: Path
    read: bool = True
    write: bool = True
    observers: Sequence[Any] = ()
    served: set[int] = field(default_factory=set)  # plan items written from the cache
    hits: int = 0
    _recipe: str | None = None

    def recipe(self, result: RenderResult) -> str:
        if self._recipe is None:
            from ..record.manifest import build_recipe

            self._recipe = recipe_id(build_recipe(result))
        return self._recipe

    def lookup(self, result: RenderResult, key: str, want: Callable[[dict[str, Any]], bool],
               item: int | None) -> CachedOutputs | None:
        """A verified entry: the local one, else one a shared store (an observer) has."""
        if not self.read:
            return None
        recipe = self.recipe(result)
        local = self.root / recipe / key
        hit = verify_entry(local, recipe, want) if local.is_dir() else None
        if hit is not None:
            _touch(local)
            return hit
        for o in self.observers:
            find = getattr(o, "find_cached_render", None)
            if find is None:
                continue
            dest = Path(tempfile.mkdtemp(prefix="disco-spec-shared-cache-"))
            found = find(recipe, item, dest)
            if found is not None:
                folder, run_id = found
                hit = verify_entry(Path(folder), recipe, want, {"mlflow_run_id": run_id})
                if hit is not None:
                    return replace(hit, download=dest)
            shutil.rmtree(dest, ignore_errors=True)
        return None

    def serve_item(self, result: RenderResult, item: PlanItem, observers: Sequence[Observer]) -> list[OutputRecord] | None:
        """A still's plan item from the cache into the run folder (its records), or None: render it."""
        hit = self.lookup(result, item_key(item.index), lambda o: o["item"] == item.index, item.index)
        if hit is None:
            return None
        return self._serve(result, hit, observers, {item.index: item}, item_key(item.index))[item.index]

    def serve_frames(self, result: RenderResult, items: Sequence[PlanItem], selected: Sequence[int],
                     observers: Sequence[Observer]) -> dict[int, list[OutputRecord]] | None:
        """Every selected frame of an animation from one entry, or None: render them all."""
        wanted = set(selected)
        hit = self.lookup(result, frames_key(selected), lambda o: o["item"] in wanted, None)
        if hit is None or {o["item"] for o in hit.outputs} != wanted:
            if hit is not None and hit.download is not None:
                shutil.rmtree(hit.download, ignore_errors=True)
            return None
        return self._serve(result, hit, observers, {i.index: i for i in items if i.index in wanted},
                           frames_key(selected))

    def _serve(self, result: RenderResult, hit: CachedOutputs, observers: Sequence[Observer],
               items: dict[int, PlanItem], key: str) -> dict[int, list[OutputRecord]]:
        from .records import record_output

        records: dict[int, list[OutputRecord]] = {i: [] for i in items}
        for o in sorted(hit.outputs, key=lambda o: (o["item"], o["kind"] != "partial", o["path"])):
            data = (hit.folder / o["path"]).read_bytes()  # verified above
            dest = Path(result.run_dir) / o["path"]
            make_dirs(dest.parent)
            atomic_write_bytes(dest, data)  # the run folder's one writer: no link followed
            records[o["item"]].append(record_output(result, observers, o["path"], o["kind"], items[o["item"]]))
        from .journal import read_entries

        for e in read_entries(hit.folder):  # the step checksums the items were rendered with
            if e["item"] in items and isinstance(e.get("checksums"), dict):
                result.step_checksums[e["item"]] = e["checksums"]
        for i in items:
            self.served.add(i)
            result.cached_from.append({"item": i, **hit.source})
        self.hits += 1
        if hit.download is not None:  # from a shared store: kept here too, then the download goes
            self._keep(result, hit, key)
            shutil.rmtree(hit.download, ignore_errors=True)
        return records

    def _keep(self, result: RenderResult, hit: CachedOutputs, key: str) -> None:
        """Store a shared store's verified download as the local entry `key`; the copy is verified again in
        its temp folder before it is renamed into place (a file changed between the two is never kept)."""
        if not self.write:
            return
        recipe = self.recipe(result)
        served = {(o["item"], o["path"]) for o in hit.outputs}

        def same_outputs(tmp: Path) -> bool:
            kept = verify_entry(tmp, recipe, lambda o: (o["item"], o["path"]) in served)
            return kept is not None and len(kept.outputs) == len(served)

        source = {k: v for k, v in hit.source.items() if k == "mlflow_run_id"}
        try:
            if write_entry(self.root / recipe / key, hit.folder, hit.outputs, source=source, check=same_outputs):
                prune(self.root, max_bytes())
        except OSError as exc:  # as in store: the served render goes on
            warnings.warn(f"render cache not updated: {exc}", stacklevel=2)

    def store(self, result: RenderResult) -> None:
        """Keep the outputs this render made (not those it was served), keyed by its recipe id; then prune."""
        if not self.write or result.manifest is None:
            return
        from ..record.manifest import iter_outputs

        recipe = recipe_id(result.manifest)
        outputs = iter_outputs(result.manifest)
        if result.plan.animation_mode != "None":
            groups = {} if self.served else {frames_key(sorted({o["item"] for o in outputs})): outputs}
        else:
            groups = {item_key(i): [o for o in outputs if o["item"] == i]
                      for i in sorted({o["item"] for o in outputs}) if i not in self.served}
        try:
            for key, outs in groups.items():
                write_entry(self.root / recipe / key, Path(result.run_dir), outs)
            prune(self.root, max_bytes())
        except OSError as exc:  # the cache is a convenience: a full disk must not fail a finished render
            warnings.warn(f"render cache not updated: {exc}", stacklevel=2)


def for_render(*, enabled: bool, seed_drawn: bool, continued: bool, observers: Iterable[Any] = ()) -> RenderCache | None:
    """The render's cache, or None when it must not be used at all (see the module docstring)."""
    if not enabled or continued or os.environ.get(OFF_ENV, "").lower() == "off" or checkout_dirty():
        return None
    return RenderCache(root=renders_root(), read=not seed_drawn, observers=tuple(observers))


# ---------------------------------------------------------------------------------------------
# Writing, listing, pruning
# ---------------------------------------------------------------------------------------------


def write_entry(final: Path, run_dir: Path, outputs: Sequence[dict[str, Any]], *,
                source: dict[str, str] | None = None, check: Callable[[Path], bool] | None = None) -> bool:
    """Copy the outputs and the run's manifest into a temp folder beside `final`, then rename it into place:
    a reader sees the old entry, no entry, or the whole new one. `source` is written as the entry's source.json;
    `check(temp folder)` returning False drops the copy and leaves any old entry: returns whether it was kept."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        shutil.copyfile(run_dir / MANIFEST, tmp / MANIFEST)
        if (run_dir / JOURNAL).is_file():  # the items' step checksums travel with them (repro.divergence)
            shutil.copyfile(run_dir / JOURNAL, tmp / JOURNAL)
        for o in outputs:
            dest = tmp / o["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / o["path"], dest)
        if source:
            (tmp / SOURCE).write_text(json.dumps(source))
        if check is not None and not check(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        if final.exists():
            old = final.with_name(f".{final.name}.old.{os.getpid()}")
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


def _touch(folder: Path) -> None:
    try:
        os.utime(folder)  # last used: what prune keeps longest
    except OSError:
        pass


@dataclass(frozen=True)
class EntryInfo:
    recipe_id: str
    key: str
    path: Path
    bytes: int
    last_used: float  # the folder's mtime: written or last served
    manifest_id: str | None
    batch_name: str | None


def list_entries(root: Path | None = None) -> list[EntryInfo]:
    """Every complete entry (temp folders left out), most recently used first."""
    from ..spec.untrusted_json import read_file

    root = root or renders_root()
    out = []
    for recipe in sorted(root.iterdir()) if root.is_dir() else []:
        if not recipe.is_dir() or recipe.name.startswith("."):
            continue
        for entry in sorted(recipe.iterdir()):
            if not entry.is_dir() or entry.name.startswith(".") or entry.is_symlink():
                continue
            size = sum(p.stat().st_size for p in entry.rglob("*") if p.is_file() and not p.is_symlink())
            mid = batch = None
            try:
                doc = read_file(str(entry / MANIFEST), max_bytes=64 * 2**20)
                mid = doc.get("id") if isinstance(doc, dict) else None
                batch = ((doc.get("hashed") or {}).get("spec") or {}).get("run", {}).get("batch_name")
            except (SpecError, OSError, AttributeError, TypeError):
                pass
            out.append(EntryInfo(recipe_id=recipe.name, key=entry.name, path=entry, bytes=size,
                                 last_used=entry.stat().st_mtime, manifest_id=mid, batch_name=batch))
    return sorted(out, key=lambda e: -e.last_used)


def prune(root: Path | None = None, keep_bytes: int | None = None, *, older_than_s: float | None = None) -> list[EntryInfo]:
    """Remove entries, least recently used first, until at most `keep_bytes` remain (and every entry unused for
    `older_than_s`); leftover temp folders of interrupted writes too. Returns the entries removed."""
    root = root or renders_root()
    entries = list_entries(root)
    removed, total, now = [], 0, time.time()
    for e in entries:  # newest first: keep while under the bound
        too_old = older_than_s is not None and now - e.last_used > older_than_s
        if too_old or (keep_bytes is not None and total + e.bytes > keep_bytes):
            shutil.rmtree(e.path, ignore_errors=True)
            removed.append(e)
        else:
            total += e.bytes
    for recipe in root.iterdir() if root.is_dir() else []:
        if recipe.is_dir() and not recipe.is_symlink():
            for stale in recipe.glob(".*"):
                if stale.is_dir() and now - stale.stat().st_mtime > 3600:
                    shutil.rmtree(stale, ignore_errors=True)
            if not any(recipe.iterdir()):
                recipe.rmdir()
    return removed

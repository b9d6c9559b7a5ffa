"""An MLflow store as the render cache's shared store (run.cache): a team's server holds every finished run
tagged with its recipe id (`disco_spec.recipe_id`, tracking.finish.manifest_tags), and a render of the same recipe
on another machine downloads that run's manifest and outputs instead of rendering. The download is verified
by run.cache against the manifest's hashes like a local entry; a run whose files do not match is skipped.

A tracked render offers the store through its tracker (MlflowTracker.find_cached_render). A sweep cell is tracked
after it ran (tracking.sweeps), so its render is given a `SharedCacheLookup` for the sweep's store instead: an
observer that only looks up (run.cache consults any observer with `find_cached_render`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..run.records import BaseObserver
from .client import connect, http_env
from .finish import TAG_PREFIX

RECIPE_TAG = TAG_PREFIX + "recipe_id"
MAX_CANDIDATES = 5  # finished runs of one recipe tried, newest first
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def find_recipe_run(client: Any, tracking_uri: str | None, recipe: str, item: int | None,
                    dest: Path) -> tuple[Path, str] | None:
    """A finished run tagged with `recipe` whose manifest covers plan item `item` (None: any), downloaded into
    a folder under `dest` (manifest.json and the outputs at their run-folder paths): (folder, run id)."""
    from ..record.manifest_schema import read_json_file
    from .runs import resolve_run_source

    if not _HEX64.match(recipe):  # only ever a hash: nothing else goes into the filter string
        return None
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    runs = client.search_runs(experiments, filter_string=f"tags.`{RECIPE_TAG}` = '{recipe}' and "
                                                         "attributes.status = 'FINISHED'",
                              max_results=MAX_CANDIDATES, order_by=["attributes.start_time DESC"])
    for run in runs:
        rid = run.info.run_id
        folder = dest / rid
        manifest_path = resolve_run_source(rid, tracking_uri, folder)
        if manifest_path.name != "manifest.json":
            continue
        manifest = read_json_file(manifest_path)
        items = (manifest.get("hashed") or {}).get("items") if isinstance(manifest, dict) else None
        if item is None or (isinstance(items, list) and item in items):
            return folder, rid
    return None


class SharedCacheLookup(BaseObserver):
    """A render observer that offers the MLflow store at `tracking_uri` as the render cache's shared store and
    records nothing: for renders tracked after they ran (sweep cells, tracking.sweeps.SweepTracker.cache_lookup).

    It travels with a job to Ray workers: only the URI is pickled, each process connects on its first lookup. A
    store that cannot be opened is a miss, and is not asked again by this process; a local sqlite store whose
    file is not on this machine (a worker on another node) is a miss without being opened, so none is created."""

    def __init__(self, tracking_uri: str, client: Any = None) -> None:
        self.tracking_uri = tracking_uri
        self._client = client
        self._unreachable = False

    def __getstate__(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "_client": None, "_unreachable": False}

    def find_cached_render(self, recipe: str, item: int | None, dest: Path) -> tuple[Path, str] | None:
        if self._unreachable or _sqlite_file_missing(self.tracking_uri):
            return None
        with http_env():
            if self._client is None:
                try:
                    self.tracking_uri, self._client = connect(self.tracking_uri)
                except Exception:  # noqa: BLE001 - a store that cannot serve is a miss, never a failed render
                    self._unreachable = True
                    return None
            try:
                return find_recipe_run(self._client, self.tracking_uri, recipe, item, Path(dest))
            except Exception:  # noqa: BLE001 - as above: the item is rendered
                return None


def _sqlite_file_missing(tracking_uri: str) -> bool:
    """Whether the URI is a sqlite store whose database file does not exist here (MLflow would create one)."""
    prefix = "sqlite:///"
    return tracking_uri.startswith(prefix) and not Path(tracking_uri[len(prefix):]).is_file()

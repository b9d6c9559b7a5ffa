"""An MLflow store as the render cache's shared store (run.cache): a team's server holds every finished run
tagged with its recipe id (`disco_spec.recipe_id`, tracking.finish.manifest_tags), and a render of the same recipe
on another machine downloads that run's manifest and outputs instead of rendering. The download is verified
by run.cache against the manifest's hashes like a local entry; a run whose files do not match is skipped."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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

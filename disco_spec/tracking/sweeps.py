"""MLflow for sweeps: a parent run per sweep, one child run per cell (names are stable; tests pin them).

Everything is logged by the process that runs the sweep (the driver), also on the Ray backend: a cell's
child run is recorded from the cell's result (its run folder and the step statistics the job returned)
by a `tracking.MlflowTracker` with `parent_run_id`, so workers need no access to the tracking store.
mlflow is imported lazily, as in disco_spec.tracking.tracker.

Parent run (experiment: `--experiment`, else the spec's `name`, else its batch_name, as for `render`):
- name: what it varies, then which sweep (`clip_guidance_scale × steps · smoke sweep-0001`); start and end: the sweep's; system metrics while it runs; tags `disco_spec.sweep = true`, `disco_spec.sweep_mode` (grid|zip),
  `disco_spec.sweep_shape` (e.g. `3x2`), `disco_spec.n_cells`, `disco_spec.sweep_dir`,
  `disco_spec.backend`, `disco_spec.batch_name`, `disco_spec.version`, `disco_spec.base_spec_sha256`,
  `mlflow.source.name` (the spec file), `mlflow.user`; a description naming the swept keys;
- params `sweep.mode` and `sweep.<dotted path>` = the values swept (JSON list);
- artifacts: `base_spec.json` (at the start); `contact_sheet.png`, `comparison.html` (the cells' comparison
  page, which MLflow previews in the run's artifacts), `sweep.json` and the table
  `cells.json` (MLflow's `log_table`: cell, one column per swept key with the cell's value, image (the
  cell's image, shown in the table), manifest_id, mlflow_run_id, image_file, image_sha256) at the end;
  the contact sheet also as `log_image` under the key `image`, as the cells' images are. Status
  FINISHED, or FAILED when a cell failed.

Child runs: what `render` records for a run (tracker.py: params, the final image under `image`, ...),
previews excepted, plus the tag `mlflow.parentRunId`, the name `clip_guidance_scale=5000 steps=5 · smoke
sweep-0001/cell-03` (the cell's values, then the sweep and the cell: never a render's `run-NNNN`), the
cell's start and end times (`RenderResult.started_at` / `ended_at`, also from Ray workers), a
description of its own (the cell and its values, not the base spec's), and tags
`disco_spec.sweep_cell`, `disco_spec.sweep_parent_dir` and `disco_spec.sweep.<key>` = the cell's label.

The sweep's store is also its cells' shared render cache (tracking.shared_cache): `cache_lookup()` is given to
every cell's render, which is served from a finished run of the same recipe there (downloaded and verified) as a
tracked render is; the cell's child run then carries `disco_spec.cached_from` from its manifest.

As for renders, tracking failures never fail a sweep: the first one prints one warning and tracking
stops for the rest of the sweep.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO

from .._version import __version__
from .client import connect, experiment_id, http_env, short_error
from .names import cell_run_name, source_tags, sweep_run_name
from .params import as_written
from .shared_cache import SharedCacheLookup
from .system import start_monitor, stop_monitor
from .tracker import IMAGE_KEY, MAX_TAG_VAL_LENGTH, TAG_PREFIX, MlflowTracker, sanitize_key, truncate_value

__all__ = ["SweepTracker", "make_sweep_tracker"]


class SweepTracker:
    """Records a sweep in MLflow: start() a parent run, log_cell() per finished cell, finish()."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, *,
                 stream: TextIO | None = None) -> None:
        self._uri_arg = tracking_uri
        self.tracking_uri: str | None = tracking_uri
        self.experiment = experiment
        self.stream = stream
        self.experiment_name: str | None = None
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.child_run_ids: dict[str, str] = {}
        self.failure: str | None = None
        self._client: Any = None
        self._plan: Any = None
        self._rows: list[dict[str, Any]] = []
        self._sweep_dir: Path | None = None
        self._monitor: Any = None

    @property
    def active(self) -> bool:
        return self.parent_run_id is not None and self.failure is None

    def _warn(self, what: str, exc: BaseException | str) -> None:
        if self.failure is not None:
            return
        why = exc if isinstance(exc, str) else short_error(exc)
        self.failure = (f"warning: MLflow tracking disabled for this sweep: could not {what} at "
                        f"{self.tracking_uri or 'the default tracking URI'}: {why}. The sweep goes on; its "
                        "run folders, sweep.json and contact sheet are kept.")
        try:
            print(self.failure, file=self.stream or sys.stderr, flush=True)
        except Exception:  # noqa: BLE001
            pass

    # -- parent ---------------------------------------------------------------------------------

    def start(self, plan: Any, sweep_dir: Path, backend: str) -> None:
        self._plan = plan
        try:
            with http_env():
                self._start(plan, Path(sweep_dir), backend)
        except Exception as exc:  # noqa: BLE001 - tracking never fails a sweep
            self._warn("start the MLflow parent run", exc)

    def _start(self, plan: Any, sweep_dir: Path, backend: str) -> None:
        from mlflow.entities import Param

        from ..record.manifest import spec_sha256

        self.tracking_uri, self._client = connect(self._uri_arg)
        client = self._client
        self._sweep_dir = sweep_dir
        self.experiment_name = self.experiment or plan.name
        self.experiment_id = experiment_id(client, self.experiment_name)
        shape = "x".join(str(n) for n in plan.shape())
        tags = {
            "sweep": "true", "sweep_mode": plan.mode, "sweep_shape": shape, "n_cells": str(len(plan.cells)),
            "sweep_dir": str(sweep_dir.resolve()), "backend": backend, "batch_name": plan.batch_name,
            "version": __version__, "base_spec_sha256": spec_sha256(plan.base_document),
        }
        all_tags = {TAG_PREFIX + k: v for k, v in tags.items()}
        keys = " × ".join(f"`{a.key}`" for a in plan.axes)
        all_tags["mlflow.note.content"] = (f"{plan.mode} sweep of {keys} over {plan.spec_path or plan.name} "
                                           f"({len(plan.cells)} cells)")[:MAX_TAG_VAL_LENGTH]
        all_tags.update(source_tags(plan.spec_path))
        run = client.create_run(self.experiment_id, tags=all_tags,
                                run_name=sweep_run_name(sweep_dir, [a.key for a in plan.axes], plan.batch_name))
        self.parent_run_id = run.info.run_id
        params = [Param("sweep.mode", plan.mode)]
        params += [Param(sanitize_key(f"sweep.{a.path}"), truncate_value(json.dumps(list(a.values), ensure_ascii=False)))
                   for a in plan.axes]
        client.log_batch(self.parent_run_id, params=params, synchronous=True)
        client.log_dict(self.parent_run_id, plan.base_document, "base_spec.json")
        self._monitor = start_monitor(self.parent_run_id, self.tracking_uri)

    def cache_lookup(self) -> SharedCacheLookup | None:
        """The sweep's store as its cells' shared render cache (their renders have no tracker: they are logged
        after they ran); None when tracking did not start or has failed."""
        if not self.active or self.tracking_uri is None:
            return None
        return SharedCacheLookup(self.tracking_uri, client=self._client)

    # -- children -------------------------------------------------------------------------------

    def log_cell(self, cell: Any, job_result: Any) -> str | None:
        """Record a finished cell as a child run (from its result); returns the child's run id."""
        from ..run.replay import replay_observers

        if not self.active:
            return None
        batch = self._plan.batch_name
        values = ", ".join(f"{k}={v}" for k, v in cell.labels.items())
        tags = {TAG_PREFIX + "sweep_cell": cell.name,
                TAG_PREFIX + "sweep_parent_dir": str(Path(job_result.job.run_dir).parent),
                "mlflow.note.content": (f"{cell.name} of the {self._plan.mode} sweep {batch}/"
                                        f"{Path(job_result.job.run_dir).parent.name}: {values}")[:MAX_TAG_VAL_LENGTH]}
        tags.update({sanitize_key(f"{TAG_PREFIX}sweep.{k}"): str(v)[:MAX_TAG_VAL_LENGTH] for k, v in cell.labels.items()})
        tracker = MlflowTracker(
            self.tracking_uri, self.experiment_name, parent_run_id=self.parent_run_id, log_previews=False,
            stream=_Quiet(), client=self._client, replayed=True, spec_path=self._plan.spec_path, extra_tags=tags,
            run_name=cell_run_name(self._sweep_dir or Path(job_result.job.run_dir).parent, cell, batch),
        )
        replay_observers(job_result.result, job_result.steps, [tracker])
        if tracker.failure is not None or tracker.run_id is None:
            self._warn(f"record {cell.name} as a child run", (tracker.failure or "no run").split(": ", 1)[-1])
            return None
        self.child_run_ids[cell.name] = tracker.run_id
        image = next((o for o in job_result.result.outputs if o.kind == "image"), None)
        self._rows.append({"cell": cell, "run_id": tracker.run_id, "manifest_id": job_result.manifest_id,
                           "image_file": image.path if image else None, "image_sha256": image.sha256 if image else None,
                           "image_path": Path(job_result.job.run_dir) / image.path if image else None})
        return tracker.run_id

    # -- end ------------------------------------------------------------------------------------

    def finish(self, sweep_dir: Path, status: str = "FINISHED") -> None:
        if self.parent_run_id is None or self._client is None:
            return
        try:
            with http_env():
                client = self._client
                monitor, self._monitor = self._monitor, None
                stop_monitor(monitor)
                if self.failure is None:
                    for name in ("contact_sheet.png", "sweep.json", "comparison.html"):
                        f = Path(sweep_dir) / name
                        if f.is_file():
                            client.log_artifact(self.parent_run_id, str(f))
                    sheet = Path(sweep_dir) / "contact_sheet.png"
                    if sheet.is_file():
                        with _open_image(sheet) as im:
                            client.log_image(self.parent_run_id, im, key=IMAGE_KEY, step=0, synchronous=True)
                    if self._rows:
                        with warnings.catch_warnings():  # pandas deprecation chatter inside MLflow
                            warnings.simplefilter("ignore")
                            client.log_table(self.parent_run_id, data=self._table(), artifact_file="cells.json")
                client.set_terminated(self.parent_run_id, status=status)
        except Exception as exc:  # noqa: BLE001
            self._warn("finish the MLflow parent run", exc)
            try:
                with http_env():
                    self._client.set_terminated(self.parent_run_id, status=status)
            except Exception:  # noqa: BLE001
                pass

    def _table(self) -> dict[str, list[Any]]:
        rows = sorted(self._rows, key=lambda r: r["cell"].index)
        table: dict[str, list[Any]] = {"cell": [r["cell"].name for r in rows]}
        for a in self._plan.axes:
            table[a.key] = [_cell_value(r["cell"], a) for r in rows]
        images = [_open_image(r["image_path"]) if r["image_path"] else None for r in rows]
        if all(im is not None for im in images):  # MLflow shows PIL images in its table view
            table["image"] = images
        for col in ("manifest_id", "run_id", "image_file", "image_sha256"):
            table["mlflow_run_id" if col == "run_id" else col] = [r[col] for r in rows]
        return table


def _cell_value(cell: Any, axis: Any) -> Any:
    """The cell's value for a swept key as written (5000, "ddim"); lists and tables as their label."""
    value = as_written(cell.overrides.get(axis.path))
    return value if isinstance(value, (int, float, str, bool)) else cell.labels[axis.key]


def _open_image(path: Path) -> Any:
    from PIL import Image

    im = Image.open(path)
    im.load()
    return im


class _Quiet:
    """A stream for the child trackers' warnings: the sweep tracker prints its own, once."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def make_sweep_tracker(*, enabled: bool, tracking_uri: str | None, experiment: str | None) -> SweepTracker | None:
    """The CLI's sweep tracker: None with --no-track."""
    if not enabled:
        return None
    return SweepTracker(tracking_uri=tracking_uri or None, experiment=experiment or None)

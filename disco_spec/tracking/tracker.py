"""MLflow tracking: every render becomes one MLflow run (only the tracking modules import mlflow).

`MlflowTracker` is a render observer. It talks to the store through `mlflow.MlflowClient` with an
explicit run id (no `mlflow.start_run()`, no active-run state), so several renders can be tracked at
once, each with its own tracker. mlflow is imported lazily: importing this module is cheap, and
`warm_up()` (what the CLI calls) imports mlflow and opens the store in a background thread while the
render loads its models; nothing of it happens with `--no-track` (no tracker).

What a run holds (names are stable; tests pin them):

- Experiment: the `experiment` argument, else the spec's `name`, else its `run.batch_name`, created
  with the tag `mlflow.experimentKind = custom_model_development`, which MLflow 3.17's UI does not read
  to choose the view (ui.py: it takes `workflowType` from the URL, else the browser's GenAI / Model
  training switch), so the URLs disco-spec prints carry `?workflowType=machine_learning`.
  Run name (names.py): what makes the run differ from the spec file as committed (`--set` overrides, a
  drawn or `--seed` seed), then the batch and the run folder: `clip_guidance_scale=1500 · smoke
  run-0002`; `smoke run-0001` when nothing differs. Start and end times: when the
  render started and when its last item was written (`RenderResult.started_at` / `ended_at`).
- Params (params.py): the settings that apply to the render (a still: no animation, 3D, video
  settings; an animation: no `n_batches`) that DD users change or that differ from DD 5.2's default,
  values as written (`guidance.clip_guidance_scale = 5000`, `models.use_secondary_model = true`,
  `animation.zoom = 0: (1), 10: (1.05)`), frame 0's prompts, `models.clip` (the CLIP models used).
  The whole spec is `spec.json`.
- Tags: short ones for the UI's chips (`seed`, `spec`, `plan`, `manifest`: 12 hex digits), the long
  `disco_spec.*` ones (`spec_sha256`, `plan_sha256`, `version`, `device`, `base_seed`, `seed_drawn`,
  `batch_name`, `n_items`, `run_dir`, `manifest_id`, `git_commit`), MLflow's `mlflow.source.name`
  (the spec file, or the PNG a remix started from; also with `--set`), `mlflow.user` (the OS user), `mlflow.source.git.commit`, and the spec's
  description as the run's description (`mlflow.note.content`).
- Metrics: per sampler step, every entry of `StepEvent.stats` under its own name (`clip_loss/<model>`,
  `tv_loss`, `range_loss`, `sat_loss`, `init_loss`, `grad_rms`, `nan_guard`) at a global step counter
  over the whole render (one curve per name, however many frames). Per frame (animations; per item
  for stills), at step = the frame number: `frame/clip_loss` (the sum over CLIP models at the frame's
  last step), `frame/<stat>` for the other stats, `frame/seconds`. At the end: `render_seconds` (the
  render's time less the tracker's own time in its callbacks, reported as `tracking_seconds`) and
  `n_images`. System metrics (`system/...`, system.py) while the render runs.
- Images: previews under `preview` (step = the global step), final images and frames under `image`
  (step = the frame; stills: the item), so the chart view's image grid and its slider show them.
- Artifacts: `spec.json` and `plan.json` (at the start); at the end each file of `result.outputs` at
  its run-folder path (images, partials, the mp4) and `manifest.json`: the artifact tree mirrors the
  run folder (plus MLflow's `images/`), so downloaded artifacts are a run folder.

Store: `tracking_uri` if given, else `MLFLOW_TRACKING_URI`, else MLflow's own default for the
installed version (MLflow 3: `sqlite:///mlflow.db` in the current folder).

Failures never fail a render: the first tracking error (server unreachable at the start or later,
store refusing a write, ...) prints ONE warning on stderr naming the URI and what failed, and
tracking stops for the rest of that render; the run folder and its manifest are kept. HTTP calls use
short time-outs and few retries (`ENV_DEFAULTS`) unless the `MLFLOW_HTTP_REQUEST_*` variables are set.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from .._version import __version__
from ..run.records import BaseObserver, OutputRecord, RenderResult, StepEvent
from .client import ENV_DEFAULTS, TRACKING_DEADLINE_S, Connection, http_env, mlflow_limits, short_error, connect, experiment_id
from .finish import FRAME_PREFIX, frame_metrics, manifest_tags, read_manifest
from .names import render_run_name, short_tags, source_tags, spec_file_document
from .system import start_monitor, stop_monitor
from .params import param_value, MAX_ENTITY_KEY_LENGTH, MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH, MAX_TAG_VAL_LENGTH, TRUNCATED_MARKER, flatten_spec, sanitize_key, spec_params, spec_sha256, truncate_value
from .runs import TrackingError, looks_like_run_id, mlflow_run_resolver, register_run_resolver, resolve_run_source

__all__ = [
    "MlflowTracker",
    "TrackingError",
    "make_tracker",
    "resolve_run_source",
    "looks_like_run_id",
    "mlflow_run_resolver",
    "register_run_resolver",
    "flatten_spec",
    "spec_params",
    "sanitize_key",
    "spec_sha256",
]
# Also importable from here, for other modules and tests (this module does not use them itself).
__all__ += [
    "ENV_DEFAULTS", "MAX_ENTITY_KEY_LENGTH", "MAX_METRICS_PER_BATCH", "MAX_PARAM_VAL_LENGTH",
    "MAX_PARAMS_TAGS_PER_BATCH", "TRUNCATED_MARKER", "param_value", "truncate_value",
]

TAG_PREFIX = "disco_spec."
PREVIEW_KEY = "preview"
IMAGE_KEY = "image"  # the final images / animation frames, step = frame (stills: item index)


def _ms(t: float | None) -> int:
    return int((t if t is not None else time.time()) * 1000)


class MlflowTracker(BaseObserver):
    """A render observer that records the render as one MLflow run (see the module docstring for names).

    After a render: `run_id` is the MLflow run id (None if tracking never started), `tracking_uri`
    the store used, `experiment_id` its experiment, and `failure` the warning printed (None when every
    call succeeded). One tracker can observe several renders one after another: each gets its own run.
    With `parent_run_id`, each run is a child of that run (MLflow's `mlflow.parentRunId` tag): how sweep
    cells are recorded. `replayed=True` is for renders shown after they ran (replay_observers): times
    come from the result, and there are no system metrics and no `frame/seconds`.
    `spec_path` is the run's source (`mlflow.source.name`; default: the path the render was given), and
    `base_document` what its name says it differs from (default: the spec file at that path).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        *,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        log_previews: bool = True,
        log_outputs: bool = True,
        metric_flush_s: float = 1.0,
        stream: TextIO | None = None,
        client: Any = None,
        system_metrics: bool = True,
        replayed: bool = False,
        spec_path: str | None = None,
        extra_tags: dict[str, str] | None = None,
        base_document: dict[str, Any] | None = None,
    ) -> None:
        self._uri_arg = tracking_uri
        self.tracking_uri: str | None = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.log_previews = log_previews
        self.log_outputs = log_outputs
        self.metric_flush_s = metric_flush_s
        self.stream = stream
        self.system_metrics = system_metrics and not replayed
        self.replayed = replayed
        self.spec_path = spec_path
        self.extra_tags = dict(extra_tags or {})
        self.base_document = base_document
        self._client: Any = client
        self._connection: Connection | None = None
        self.deadline_s = TRACKING_DEADLINE_S
        self._reset()

    def warm_up(self) -> "MlflowTracker":
        """Import mlflow and open the store now, in a background thread (on_start waits for it)."""
        if self._client is None and self._connection is None:
            self._connection = Connection(self._uri_arg)
        return self

    def _reset(self) -> None:
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.failure: str | None = None
        self.tracking_seconds = 0.0
        self._disabled = False
        self._closed = False
        self._result: RenderResult | None = None
        self._step = 0
        self._pending: list[Any] = []
        self._last_flush = 0.0
        self._logged_outputs: set[str] = set()
        self._last_stats: dict[int, dict[str, float]] = {}
        self._item_t0 = time.monotonic()
        self._monitor: Any = None

    @property
    def run_url(self) -> str | None:
        """The run's page in the MLflow UI when the store is a server (http/https), else None."""
        uri = self.tracking_uri or ""
        if self.run_id is None or self.experiment_id is None or not uri.startswith(("http://", "https://")):
            return None
        return f"{uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    # -- observer events ------------------------------------------------------------------

    def on_start(self, result: RenderResult) -> None:
        self._reset()
        self._result = result
        self._guarded("start the MLflow run", self._start, result)

    def on_step(self, event: StepEvent) -> None:
        if not self._active():
            return
        step = self._step
        self._step += 1
        self._guarded("log step metrics", self._log_step, event, step)

    def on_output(self, result: RenderResult, record: OutputRecord) -> None:
        if self._active() and record.kind == "image":
            self._guarded("log a final image", self._log_final_image, result, record)

    def on_end(self, result: RenderResult) -> None:
        if self._active():
            self._guarded("finish the MLflow run", self._finish, result, "FINISHED")

    def on_error(self, result: RenderResult | None, exc: BaseException | None = None) -> None:
        """Close the run as FAILED (KILLED for KeyboardInterrupt); for renders that stop with an error."""
        if not self._active():
            return
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        self._guarded("close the failed MLflow run", self._close, result, status)

    # -- the work -------------------------------------------------------------------------

    def find_cached_render(self, recipe: str, item: int | None, dest: Path) -> tuple[Path, str] | None:
        """The render cache's shared store (run.cache): a finished run of this tracker's store tagged with the
        recipe id and covering `item`, downloaded into `dest` (tracking.shared_cache). None on a miss, and on any
        failure to reach the store (the item is then rendered)."""
        if not self._active():
            return None
        from .shared_cache import find_recipe_run

        try:
            with http_env():
                return find_recipe_run(self._connect(), self.tracking_uri, recipe, item, Path(dest))
        except Exception:  # noqa: BLE001 - a store that cannot serve is a miss, never a failed render
            return None

    def _active(self) -> bool:
        return self.run_id is not None and not self._disabled and not self._closed

    def _guarded(self, what: str, fn: Any, *args: Any) -> None:
        """Call fn in a worker thread within what is left of the render's tracking deadline
        (TRACKING_DEADLINE_S over start, every step's logging and the end): a server that answers a byte
        every few seconds (each read within the HTTP time-out) stops tracking, with one warning, instead of
        holding the render."""
        if self._disabled:
            return
        remaining = self.deadline_s - self.tracking_seconds
        if remaining <= 0:
            self._disable(what, TimeoutError(f"tracking used its {self.deadline_s:g} s deadline"))
            return
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                with http_env():
                    fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the render's thread below
                outcome.append(exc)

        t0 = time.perf_counter()
        worker = threading.Thread(target=call, daemon=True, name="disco-spec-mlflow-call")
        worker.start()
        try:
            worker.join(remaining)
        finally:
            self.tracking_seconds += time.perf_counter() - t0
        if worker.is_alive():
            self._disable(what, TimeoutError(f"no answer within the {self.deadline_s:g} s tracking deadline"))
        elif outcome and isinstance(outcome[0], Exception):  # tracking must never fail a render
            self._disable(what, outcome[0])
        elif outcome:
            raise outcome[0]

    def _disable(self, what: str, exc: BaseException) -> None:
        self._disabled = True
        with contextlib.suppress(Exception):
            stop_monitor(self._monitor)
        self._monitor = None
        run_dir = self._result.run_dir if self._result is not None else "the run folder"
        self.failure = (
            f"warning: MLflow tracking disabled for this render: could not {what} at "
            f"{self.tracking_uri or 'the default tracking URI'}: {short_error(exc)}. "
            f"The render goes on; its images and manifest are kept in {run_dir}."
        )
        stream = self.stream or sys.stderr
        try:
            print(self.failure, file=stream, flush=True)
        except Exception:  # noqa: BLE001 - a closed stream must not fail the render either
            pass

    def _connect(self) -> Any:
        if self._client is None:
            conn, self._connection = self._connection, None
            self.tracking_uri, self._client = conn.get() if conn is not None else connect(self._uri_arg)
        elif self.tracking_uri is None:
            self.tracking_uri = self._client.tracking_uri
        return self._client

    def _start(self, result: RenderResult) -> None:
        client = self._connect()
        spec, plan = result.spec, result.plan
        self.experiment_id = experiment_id(client, self.experiment or spec.name or plan.batch_name)
        spec_hash = spec_sha256(result.spec_document)
        tags = {
            "spec_sha256": spec_hash,
            "plan_sha256": plan.sha256(),
            "version": __version__,
            "device": result.device,
            "base_seed": str(plan.base_seed),
            "seed_drawn": str(bool(result.seed_drawn)).lower(),
            "batch_name": plan.batch_name,
            "n_items": str(plan.n_items),
            "run_dir": str(Path(result.run_dir).resolve()),
        }
        all_tags = {TAG_PREFIX + k: v for k, v in tags.items()}
        all_tags.update(short_tags(seed=plan.base_seed, spec_sha256=spec_hash, plan_sha256=plan.sha256()))
        source = self.spec_path or getattr(result, "spec_path", None)
        all_tags.update(source_tags(source))
        if spec.description:
            all_tags["mlflow.note.content"] = spec.description[:MAX_TAG_VAL_LENGTH]
        all_tags.update(self.extra_tags)  # e.g. a sweep cell's own description
        if self.parent_run_id:
            all_tags["mlflow.parentRunId"] = self.parent_run_id
        started = getattr(result, "started_at", None)
        name = self.run_name
        if name is None:  # per render: one tracker may observe several
            base = self.base_document if self.base_document is not None else spec_file_document(source)
            name = render_run_name(result, base)
        run = client.create_run(self.experiment_id, start_time=_ms(started), tags=all_tags, run_name=name)
        self.run_id = run.info.run_id
        self._log_params(result.spec_document)
        client.log_dict(self.run_id, result.spec_document, "spec.json")
        client.log_dict(self.run_id, plan.to_dict(), "plan.json")
        if self.system_metrics:
            self._monitor = start_monitor(self.run_id, self.tracking_uri)
        self._last_flush = self._item_t0 = time.monotonic()

    def _log_params(self, doc: dict[str, Any]) -> None:
        from mlflow.entities import Param

        limit, per_batch, _ = mlflow_limits()
        params = [Param(k, v) for k, v in spec_params(doc, limit).items()]
        for i in range(0, len(params), per_batch):
            self._client.log_batch(self.run_id, params=params[i : i + per_batch], synchronous=True)

    def _log_step(self, event: StepEvent, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        kept: dict[str, float] = {}
        for key, value in event.stats.items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            kept[key] = v
            self._pending.append(Metric(sanitize_key(key), v, now, step))
        self._last_stats[event.item.index] = kept
        if event.preview is not None and self.log_previews:
            self._flush_metrics()
            self._client.log_image(self.run_id, event.preview, key=PREVIEW_KEY, step=step, synchronous=True)
        elif time.monotonic() - self._last_flush >= self.metric_flush_s:
            self._flush_metrics()

    def _frame_step(self, result: RenderResult, record: OutputRecord) -> int:
        return int(record.frame) if result.plan.animation_mode != "None" else int(record.item_index)

    def _log_final_image(self, result: RenderResult, record: OutputRecord) -> None:
        from mlflow.entities import Metric
        from PIL import Image

        step, now = self._frame_step(result, record), int(time.time() * 1000)
        metrics = frame_metrics(self._last_stats.get(record.item_index, {}))
        if not self.replayed:
            metrics[FRAME_PREFIX + "seconds"] = time.monotonic() - self._item_t0
        self._pending += [Metric(k, v, now, step) for k, v in metrics.items()]
        self._flush_metrics()
        with Image.open(Path(result.run_dir) / record.path) as im:
            im.load()
            self._client.log_image(self.run_id, im, key=IMAGE_KEY, step=step, synchronous=True)
        self._item_t0 = time.monotonic()

    def _flush_metrics(self) -> None:
        _, _, per_batch = mlflow_limits()
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), per_batch):
            self._client.log_batch(self.run_id, metrics=pending[i : i + per_batch], synchronous=True)
        self._last_flush = time.monotonic()

    def _log_output(self, result: RenderResult, record: OutputRecord) -> None:
        if record.path in self._logged_outputs:
            return
        path = Path(result.run_dir) / record.path
        folder = os.path.dirname(record.path.replace("\\", "/")) or None
        self._client.log_artifact(self.run_id, str(path), artifact_path=folder)
        self._logged_outputs.add(record.path)

    def _finish(self, result: RenderResult, status: str) -> None:
        from mlflow.entities import Metric, RunTag

        client = self._client
        self._flush_metrics()
        if self.log_outputs:
            for record in result.outputs:
                self._log_output(result, record)
        now = int(time.time() * 1000)
        n_images = sum(1 for o in result.outputs if o.kind == "image")
        # the render's clock ran during the tracker's callbacks (all but the upload above): take them out
        seconds = float(result.seconds) if self.replayed else max(0.0, float(result.seconds) - self.tracking_seconds)
        metrics = [Metric("render_seconds", seconds, now, 0), Metric("n_images", float(n_images), now, 0),
                   Metric("tracking_seconds", float(self.tracking_seconds), now, 0)]
        tags = [RunTag(TAG_PREFIX + "device", str(result.device))]
        manifest = read_manifest(result)
        manifest_file = Path(result.run_dir) / "manifest.json"
        if manifest_file.is_file():
            client.log_artifact(self.run_id, str(manifest_file))
        elif manifest is not None:
            client.log_dict(self.run_id, manifest, "manifest.json")
        if manifest is not None:
            tags += [RunTag(k, v) for k, v in manifest_tags(manifest, result.plan.base_seed).items()]
        client.log_batch(self.run_id, metrics=metrics, tags=tags, synchronous=True)
        self._close(result, status)

    def _close(self, result: RenderResult | None, status: str) -> None:
        if self._pending and status != "FINISHED":
            with contextlib.suppress(Exception):
                self._flush_metrics()
        self._closed = True  # later events of this render are ignored, even if closing fails
        monitor, self._monitor = self._monitor, None
        with contextlib.suppress(Exception):  # system metrics are a bonus: never a failure
            stop_monitor(monitor)
        ended = getattr(result, "ended_at", None) if result is not None else None
        self._client.set_terminated(self.run_id, status=status, end_time=_ms(ended if status == "FINISHED" else None))


# ---------------------------------------------------------------------------------------------
# CLI helpers
# ---------------------------------------------------------------------------------------------


def make_tracker(*, enabled: bool, tracking_uri: str | None, experiment: str | None,
                 spec_path: str | os.PathLike | None = None,
                 base_document: dict[str, Any] | None = None) -> MlflowTracker | None:
    """The CLI's tracker: None with --no-track (mlflow is never imported), else a tracker for --tracking-uri /
    MLFLOW_TRACKING_URI / default, opening its store in the background; `spec_path`: the file rendered."""
    if not enabled:
        return None
    return MlflowTracker(tracking_uri=tracking_uri or None, experiment=experiment or None,
                         spec_path=str(spec_path) if spec_path is not None else None,
                         base_document=base_document).warm_up()

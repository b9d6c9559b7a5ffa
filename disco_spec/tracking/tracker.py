"""MLflow tracking: every render becomes one MLflow run (only the tracking modules import mlflow).

`MlflowTracker` is a render observer. It talks to the store through `mlflow.MlflowClient` with an
explicit run id (no `mlflow.start_run()`, no active-run state), so several renders can be tracked at
once, each with its own tracker. mlflow is imported lazily, when a tracker starts: importing this
module is cheap.

What a run holds (names are stable; tests pin them):

- Experiment: the `experiment` argument, else the spec's `name`, else its `run.batch_name`.
  Run name: `{batch_name}/{run folder name}`, e.g. `smoke/run-0003`.
- Params: the spec as rendered (defaults filled in, concrete seed), flattened to dotted keys:
  `guidance.clip_guidance_scale = 5000.0`, `run.set_seed = 42`. Strings are logged as they are;
  everything else as JSON (`true`, `null`, `[64, 64]`); lists are leaves, dicts are flattened
  (`prompts.text_prompts.0 = ["...", "..."]`), empty dicts are `{}`. Key characters MLflow refuses are
  replaced by `_` (`$schema` -> `_schema`). Values longer than MLflow's limit are cut with the marker
  `TRUNCATED_MARKER`; the whole spec is always in the `spec.json` artifact.
- Tags (`disco_spec.*`): `spec_sha256`, `plan_sha256`, `version`, `device`, `base_seed`, `seed_drawn`,
  `batch_name`, `n_items`, `run_dir`, and at the end `manifest_id` and `git_commit` (when the manifest
  has one; also set as MLflow's own `mlflow.source.git.commit`). The spec's `description` is the run's note.
- Metrics, per sampler step, with `step` = a global step counter over the whole render (0, 1, 2, ...
  across all items, so every history has strictly increasing steps): every entry of `StepEvent.stats`
  under its own name (`clip_loss/<model>`, `tv_loss`, `range_loss`, `sat_loss`, `init_loss`,
  `grad_rms`, `nan_guard`), sanitised to MLflow's metric-name characters. When the plan has more than
  one item, per-step names are prefixed with the plan item: `item0/tv_loss`, `item1/clip_loss/tiny-clip`.
  At the end: `render_seconds` and `n_images`.
- Images: each preview (`StepEvent.preview`, every `display_rate` steps and the last) with
  `MlflowClient.log_image(key="preview", step=<global step>)` (`item{i}/preview` for multi-item plans);
  MLflow stores them under the `images/` artifact folder.
- Artifacts: `spec.json` and `plan.json` (at the start, with `log_dict`); at the end each file of
  `result.outputs` at its run-folder path (`smoke_0000.png`, `partials/...`) and `manifest.json`.
  Outputs are uploaded at the end, not as they are written, because finalize_run stamps the
  manifest id into the final PNGs: the uploaded bytes are the ones the manifest lists. The artifact
  tree mirrors the run folder (plus MLflow's `images/`), so downloaded artifacts are a run folder.

Store: `tracking_uri` if given, else `MLFLOW_TRACKING_URI`, else MLflow's own default for the
installed version (MLflow 3: `sqlite:///mlflow.db` in the current folder). The URI is resolved when
the tracker is created.

Failures never fail a render: the first tracking error (server unreachable at the start or later,
store refusing a write, ...) prints ONE warning on stderr naming the URI and what failed, and
tracking stops for the rest of that render; the run folder and its manifest are kept. HTTP calls use
short time-outs and few retries (`ENV_DEFAULTS`) unless the `MLFLOW_HTTP_REQUEST_*` variables are set.

Pieces: `tracking_params` (the spec as param names and values), `tracking_client` (MLflow access:
time-outs, tracking URI, limits), `tracking_runs` (downloading tracked runs; run ids for `rebuild`
and `diff`). This module is the render observer and re-exports their names.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .._version import __version__
from ..run.records import BaseObserver, OutputRecord, RenderResult, StepEvent
from .client import ENV_DEFAULTS, _http_env, _limits, _resolve_uri, _short
from .params import MAX_ENTITY_KEY_LENGTH, MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH, MAX_TAG_VAL_LENGTH, TRUNCATED_MARKER, _BAD_IMAGE_KEY_CHARS, _dig, flatten_spec, sanitize_key, spec_params, spec_sha256, truncate_value
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
    "MAX_PARAMS_TAGS_PER_BATCH", "TRUNCATED_MARKER", "truncate_value",
]

# Where disco_spec.record.manifest keeps these (older/other layouts after the first path).
MANIFEST_GIT_COMMIT = ("hashed.code.git_commit", "code.git_commit", "git_commit")
MANIFEST_GIT_DIRTY = ("hashed.code.git_dirty", "code.git_dirty", "git_dirty")
MANIFEST_SPEC_SHA256 = ("hashed.spec_sha256", "spec_sha256")

TAG_PREFIX = "disco_spec."
PREVIEW_KEY = "preview"


def read_manifest(result: RenderResult) -> dict[str, Any] | None:
    """The manifest set on the result by disco_spec.record.manifest.finalize_run, else the run folder's file."""
    manifest = getattr(result, "manifest", None)
    if isinstance(manifest, dict):
        return manifest
    path = Path(result.run_dir) / "manifest.json"
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return loaded if isinstance(loaded, dict) else None
    return None


# ---------------------------------------------------------------------------------------------
# The render observer
# ---------------------------------------------------------------------------------------------


class MlflowTracker(BaseObserver):
    """A render observer that records the render as one MLflow run (see the module docstring for names).

    After a render: `run_id` is the MLflow run id (None if tracking never started), `tracking_uri`
    the store used, `experiment_id` its experiment, and `failure` the warning printed (None when every
    call succeeded). One tracker can observe several renders one after another: each gets its own run.
    With `parent_run_id`, each run is a child of that run (MLflow's `mlflow.parentRunId` tag; the UI nests
    it under the parent, which must be in the same experiment): how sweep cells are recorded.
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
        self._client: Any = None
        self._reset()

    def _reset(self) -> None:
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.failure: str | None = None
        self._disabled = False
        self._closed = False
        self._result: RenderResult | None = None
        self._step = 0
        self._multi = False
        self._pending: list[Any] = []
        self._last_flush = 0.0
        self._logged_outputs: set[str] = set()

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
        self._multi = result.plan.n_items > 1
        self._guarded("start the MLflow run", self._start, result)

    def on_step(self, event: StepEvent) -> None:
        if not self._active():
            return
        step = self._step
        self._step += 1
        self._guarded("log step metrics", self._log_step, event, step)

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

    def _active(self) -> bool:
        return self.run_id is not None and not self._disabled and not self._closed

    def _guarded(self, what: str, fn: Any, *args: Any) -> None:
        if self._disabled:
            return
        try:
            with _http_env():
                fn(*args)
        except Exception as exc:  # noqa: BLE001 - tracking must never fail a render
            self._disable(what, exc)

    def _disable(self, what: str, exc: BaseException) -> None:
        self._disabled = True
        run_dir = self._result.run_dir if self._result is not None else "the run folder"
        self.failure = (
            f"warning: MLflow tracking disabled for this render: could not {what} at "
            f"{self.tracking_uri or 'the default tracking URI'}: {_short(exc)}. "
            f"The render goes on; its images and manifest are kept in {run_dir}."
        )
        stream = self.stream or sys.stderr
        try:
            print(self.failure, file=stream, flush=True)
        except Exception:  # noqa: BLE001 - a closed stream must not fail the render either
            pass

    def _start(self, result: RenderResult) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = _resolve_uri(self._uri_arg)
        self._client = client = MlflowClient(tracking_uri=self.tracking_uri)
        spec, plan = result.spec, result.plan
        name = self.experiment or spec.name or plan.batch_name
        self.experiment_id = self._experiment_id(client, name)

        tags = {
            "spec_sha256": spec_sha256(result.spec_document),
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
        if spec.description:
            all_tags["mlflow.note.content"] = spec.description[:MAX_TAG_VAL_LENGTH]
        if self.parent_run_id:
            all_tags["mlflow.parentRunId"] = self.parent_run_id
        run = client.create_run(
            self.experiment_id,
            tags=all_tags,
            run_name=self.run_name or f"{plan.batch_name}/{Path(result.run_dir).name}",
        )
        self.run_id = run.info.run_id
        self._log_params(result.spec_document)
        client.log_dict(self.run_id, result.spec_document, "spec.json")
        client.log_dict(self.run_id, plan.to_dict(), "plan.json")
        self._last_flush = time.monotonic()

    @staticmethod
    def _experiment_id(client: Any, name: str) -> str:
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(name)
        if exp is None:
            try:
                return client.create_experiment(name)
            except MlflowException:
                exp = client.get_experiment_by_name(name)  # created meanwhile by another render
                if exp is None:
                    raise
        if exp.lifecycle_stage != "active":
            raise RuntimeError(
                f"experiment {name!r} is deleted; restore it (mlflow experiments restore) or pass another --experiment"
            )
        return exp.experiment_id

    def _log_params(self, doc: dict[str, Any]) -> None:
        from mlflow.entities import Param

        limit, per_batch, _ = _limits()
        params = [Param(k, v) for k, v in spec_params(doc, limit).items()]
        for i in range(0, len(params), per_batch):
            self._client.log_batch(self.run_id, params=params[i : i + per_batch], synchronous=True)

    def _name(self, item_index: int, key: str) -> str:
        return sanitize_key(f"item{item_index}/{key}" if self._multi else key)

    def _log_step(self, event: StepEvent, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in event.stats.items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            self._pending.append(Metric(self._name(event.item.index, key), v, now, step))
        if event.preview is not None and self.log_previews:
            self._flush_metrics()
            key = sanitize_key(
                f"item{event.item.index}/{PREVIEW_KEY}" if self._multi else PREVIEW_KEY, allowed=_BAD_IMAGE_KEY_CHARS
            )
            self._client.log_image(self.run_id, event.preview, key=key, step=step, synchronous=True)
        elif time.monotonic() - self._last_flush >= self.metric_flush_s:
            self._flush_metrics()

    def _flush_metrics(self) -> None:
        _, _, per_batch = _limits()
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
        metrics = [Metric("render_seconds", float(result.seconds), now, 0), Metric("n_images", float(n_images), now, 0)]
        tags = [RunTag(TAG_PREFIX + "device", str(result.device))]
        manifest = read_manifest(result)
        manifest_file = Path(result.run_dir) / "manifest.json"
        if manifest_file.is_file():
            client.log_artifact(self.run_id, str(manifest_file))
        elif manifest is not None:
            client.log_dict(self.run_id, manifest, "manifest.json")
        if manifest is not None:
            mid = _dig(manifest, "id", "manifest_id")
            if mid is not None:
                tags.append(RunTag(TAG_PREFIX + "manifest_id", str(mid)))
            commit = _dig(manifest, *MANIFEST_GIT_COMMIT)
            if commit is not None:
                tags.append(RunTag(TAG_PREFIX + "git_commit", str(commit)))
                tags.append(RunTag("mlflow.source.git.commit", str(commit)))
                dirty = _dig(manifest, *MANIFEST_GIT_DIRTY)
                if isinstance(dirty, bool):
                    tags.append(RunTag(TAG_PREFIX + "git_dirty", str(dirty).lower()))
            spec_hash = _dig(manifest, *MANIFEST_SPEC_SHA256)
            if isinstance(spec_hash, str):
                tags.append(RunTag(TAG_PREFIX + "spec_sha256", spec_hash))
        client.log_batch(self.run_id, metrics=metrics, tags=tags, synchronous=True)
        self._close(result, status)

    def _close(self, result: RenderResult | None, status: str) -> None:
        if self._pending and status != "FINISHED":
            with contextlib.suppress(Exception):
                self._flush_metrics()
        self._closed = True  # later events of this render are ignored, even if closing fails
        self._client.set_terminated(self.run_id, status=status)


# ---------------------------------------------------------------------------------------------
# CLI helpers
# ---------------------------------------------------------------------------------------------


def make_tracker(*, enabled: bool, tracking_uri: str | None, experiment: str | None) -> MlflowTracker | None:
    """The CLI's tracker: None with --no-track, else a tracker for --tracking-uri / MLFLOW_TRACKING_URI / default."""
    if not enabled:
        return None
    return MlflowTracker(tracking_uri=tracking_uri or None, experiment=experiment or None)

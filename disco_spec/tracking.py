"""MLflow tracking: every render becomes one MLflow run (the only module that imports mlflow).

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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, TextIO

from . import __version__
from .errors import DiscoSpecError, SpecError
from .render import BaseObserver, OutputRecord, RenderResult, StepEvent, canonical_json

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

# MLflow's limits (mlflow.utils.validation), copied so that importing this module does not import mlflow.
# The installed MLflow's values are used when it is imported (see _limits()).
MAX_PARAM_VAL_LENGTH = 6000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITY_KEY_LENGTH = 250
MAX_TAG_VAL_LENGTH = 8000

# Where disco_spec.manifest keeps these (older/other layouts after the first path).
MANIFEST_GIT_COMMIT = ("hashed.code.git_commit", "code.git_commit", "git_commit")
MANIFEST_GIT_DIRTY = ("hashed.code.git_dirty", "code.git_dirty", "git_dirty")
MANIFEST_SPEC_SHA256 = ("hashed.spec_sha256", "spec_sha256")

TRUNCATED_MARKER = "...[truncated: the full value is in the spec.json artifact]"
TAG_PREFIX = "disco_spec."
PREVIEW_KEY = "preview"

# MLflow settings for this module's calls, applied only while it calls MLflow (then restored) and
# only for variables the user has not set: short HTTP time-outs and few retries (a dead server costs
# seconds, not minutes), no run links printed to stdout (stdout is the CLI's; see `run_url`) and no
# download progress bars.
ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

# os.environ is process-wide: one lock serialises every stretch of MLflow calls made under ENV_DEFAULTS.
_ENV_LOCK = threading.RLock()
_RUN_ID = re.compile(r"^(?:runs:/)?([0-9a-f]{32})/?$")
_BAD_KEY_CHARS = re.compile(r"[^\w.\- /]")  # MLflow allows [/\w.\- :]; ':' is refused on Windows servers
_BAD_IMAGE_KEY_CHARS = re.compile(r"[^a-zA-Z0-9_\-./ ]")


class TrackingError(DiscoSpecError):
    """The tracking store could not be reached or did not answer as expected (used by resolve_run_source)."""

    exit_code = 1


# ---------------------------------------------------------------------------------------------
# Names and values
# ---------------------------------------------------------------------------------------------


def sanitize_key(name: str, *, allowed: re.Pattern[str] = _BAD_KEY_CHARS) -> str:
    """A param/metric/image key MLflow accepts: allowed characters only, no empty, '.' or '..' path parts.

    MLflow treats keys as file paths in some stores, so 'a//b', '/a', 'a/./b' and '../a' are refused;
    such parts become '_'. Keys longer than MLflow's limit keep their start and get a short hash.
    """
    parts = [allowed.sub("_", p) for p in str(name).split("/")]
    parts = ["_" if p in ("", ".", "..") else p for p in parts]
    key = "/".join(parts)
    if len(key) > MAX_ENTITY_KEY_LENGTH:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
        key = key[: MAX_ENTITY_KEY_LENGTH - 13].rstrip("/.") + "_" + digest
    return key


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def flatten_spec(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys for nested dicts: {'guidance': {'tv_scale': 0}} -> {'guidance.tv_scale': 0}.

    Lists are leaves (logged as JSON); an empty dict is a leaf too, so no section disappears.
    """
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_spec(value, name + "."))
        else:
            flat[name] = value
    return flat


def truncate_value(text: str, limit: int = MAX_PARAM_VAL_LENGTH) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATED_MARKER)] + TRUNCATED_MARKER


def spec_params(doc: dict[str, Any], limit: int = MAX_PARAM_VAL_LENGTH) -> dict[str, str]:
    """The params logged for a spec document: sanitised dotted keys -> string values within `limit`."""
    params: dict[str, str] = {}
    for key, value in flatten_spec(doc).items():
        name = sanitize_key(key)
        unique, n = name, 2
        while unique in params:  # two keys that differ only in refused characters
            unique = f"{name}_{n}"
            n += 1
        params[unique] = truncate_value(_param_value(value), limit)
    return params


def spec_sha256(doc: dict[str, Any]) -> str:
    """SHA-256 of the spec document's canonical JSON (RFC 8785 when available, as content addresses use)."""
    try:
        import rfc8785

        data = rfc8785.dumps(doc)
    except Exception:  # noqa: BLE001 - rfc8785 missing, or a value it cannot encode: the project's own form
        data = canonical_json(doc).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def looks_like_run_id(text: str) -> bool:
    """True for an MLflow run id (32 hex digits) or `runs:/<id>`, and not an existing file."""
    return bool(_RUN_ID.match(str(text).strip())) and not Path(text).exists()


def _dig(doc: Any, *paths: str) -> Any:
    """The first non-empty value found at one of the dotted paths of a nested dict."""
    for path in paths:
        cur = doc
        for part in path.split("."):
            if not isinstance(cur, dict) or part not in cur:
                cur = None
                break
            cur = cur[part]
        if cur is not None and cur != "" and cur != {} and cur != []:
            return cur
    return None


def read_manifest(result: RenderResult) -> dict[str, Any] | None:
    """The manifest set on the result by disco_spec.manifest.finalize_run, else the run folder's file."""
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


def _short(exc: BaseException, limit: int = 240) -> str:
    """One line about an exception, leading with its root cause (e.g. 'Connection refused') when buried."""
    root: BaseException = exc
    seen = set()
    while (root.__cause__ or root.__context__) is not None and id(root) not in seen:
        seen.add(id(root))
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    text = " ".join(str(exc).split()) or type(exc).__name__
    if root is not exc:
        cause = " ".join(str(root).split())
        if cause:
            text = f"{type(root).__name__}: {cause[:120]} ({text})"
    return text if len(text) <= limit else text[: limit - 4] + "...)"


# ---------------------------------------------------------------------------------------------
# MLflow access
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _http_env() -> Iterator[None]:
    """Apply ENV_DEFAULTS (for variables not set by the user) while MLflow is called; restore after."""
    with _ENV_LOCK:
        added = [k for k in ENV_DEFAULTS if k not in os.environ]
        for k in added:
            os.environ[k] = ENV_DEFAULTS[k]
        try:
            yield
        finally:
            for k in added:
                os.environ.pop(k, None)


def _resolve_uri(tracking_uri: str | None) -> str:
    import mlflow

    # mlflow.get_tracking_uri(): MLFLOW_TRACKING_URI, else the installed version's default store.
    return str(tracking_uri) if tracking_uri else mlflow.get_tracking_uri()


def _limits() -> tuple[int, int, int]:
    try:
        from mlflow.utils import validation as v

        return v.MAX_PARAM_VAL_LENGTH, v.MAX_PARAMS_TAGS_PER_BATCH, v.MAX_METRICS_PER_BATCH
    except Exception:  # noqa: BLE001 - a future MLflow moved them: the known values
        return MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH, MAX_METRICS_PER_BATCH


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


def resolve_run_source(run_id: str, tracking_uri: str | None, dest: Path, *, outputs: bool = True) -> Path:
    """Download a tracked run's `manifest.json`, `spec.json` and `plan.json` into `dest`.

    With `outputs` (the default) the files the manifest lists as outputs come too, at their run-folder
    paths, so `dest` is a run folder again (rebuild can then measure how far a differing image is).
    Returns the path of the downloaded manifest.json, or of spec.json when the run has no manifest
    (a render that stopped before its end). `run_id` is the 32-hex-digit MLflow run id (or
    `runs:/<id>`); the store is `tracking_uri`, else MLFLOW_TRACKING_URI, else MLflow's default.
    Raises SpecError (exit 2) for a malformed or unknown run id or a run without manifest and spec,
    TrackingError (exit 1) when the store cannot be reached or a download fails.
    """
    m = _RUN_ID.match(str(run_id).strip())
    if not m:
        raise SpecError(
            f"{run_id!r} is not an MLflow run id", [("RUN_ID", f"expected 32 hexadecimal digits (got {run_id!r})")]
        )
    rid = m.group(1)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with _http_env():
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        uri = _resolve_uri(tracking_uri)
        client = MlflowClient(tracking_uri=uri)
        try:
            client.get_run(rid)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                raise SpecError(
                    f"run {rid} not found at {uri}", [("RUN_ID", f"no MLflow run {rid} at {uri}")]
                ) from exc
            raise TrackingError(f"could not read run {rid} from {uri}: {_short(exc)}") from exc
        except Exception as exc:  # noqa: BLE001 - connection errors come in several types
            raise TrackingError(f"could not read run {rid} from {uri}: {_short(exc)}") from exc
        try:
            names = {f.path for f in client.list_artifacts(rid)}
            got: dict[str, Path] = {}
            for name in ("manifest.json", "spec.json", "plan.json"):
                if name in names:
                    got[name] = Path(client.download_artifacts(rid, name, dst_path=str(dest)))
            if outputs and "manifest.json" in got:
                _download_outputs(client, rid, got["manifest.json"], dest)
        except (SpecError, TrackingError):
            raise
        except Exception as exc:  # noqa: BLE001
            raise TrackingError(f"could not download the artifacts of run {rid} from {uri}: {_short(exc)}") from exc
    if "manifest.json" in got:
        return got["manifest.json"]
    if "spec.json" in got:
        return got["spec.json"]
    raise SpecError(
        f"run {rid} at {uri} has neither manifest.json nor spec.json",
        [("RUN_ID", f"run {rid} was not recorded by disco-spec (no manifest.json or spec.json artifact)")],
    )


def _download_outputs(client: Any, rid: str, manifest_path: Path, dest: Path) -> None:
    """The manifest's output files, each into its run-folder sub-folder of dest (skipping unsafe paths)."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    records = _dig(manifest, "hashed.outputs", "outputs") or []
    root = dest.resolve()
    for rec in records:
        rel = rec.get("path") if isinstance(rec, dict) else None
        if not isinstance(rel, str) or not rel:
            continue
        target = (dest / rel).resolve()
        if root not in target.parents:  # a path like ../x in an edited manifest: never write outside dest
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # MLflow puts a downloaded file in dst_path by its base name: give it the file's own folder
        client.download_artifacts(rid, rel, dst_path=str(target.parent))


def mlflow_run_resolver(tracking_uri: str | None = None, *, dest_root: str | os.PathLike | None = None) -> Any:
    """A source resolver for disco_spec.manifest.register_source_resolver: MLflow run id -> local manifest.

    `fn(source)` returns None unless `source` looks like a run id (32 hex digits or `runs:/<id>`, and
    not an existing file); then it downloads the run (resolve_run_source) into a new folder under
    `dest_root` (default: the system temp folder) and returns the manifest path.
    """

    def resolve(source: str) -> Path | None:
        if not looks_like_run_id(source):
            return None
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="disco-spec-mlflow-run-", dir=dest_root))
        return resolve_run_source(source, tracking_uri, folder)

    return resolve


def register_run_resolver(tracking_uri: str | None = None) -> Any:
    """Teach `rebuild`/`diff` MLflow run ids (idempotent per URI); returns the registered resolver."""
    from .manifest import register_source_resolver, unregister_source_resolver

    global _REGISTERED
    if _REGISTERED is not None:
        unregister_source_resolver(_REGISTERED)
    _REGISTERED = mlflow_run_resolver(tracking_uri)
    register_source_resolver(_REGISTERED)
    return _REGISTERED


_REGISTERED: Any = None

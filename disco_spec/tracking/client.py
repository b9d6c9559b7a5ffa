"""MLflow access for the tracking modules: the environment they call MLflow under (`ENV_DEFAULTS`: short
HTTP time-outs, few retries, nothing printed to stdout), the tracking URI, the installed MLflow's limits,
and the one-line summary of an MLflow error that warnings and TrackingError messages quote. mlflow is
imported inside these functions only, when a tracker or a download starts.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Iterator

from .params import MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

# MLflow settings for the tracking modules' calls, applied only while they call MLflow (then restored)
# and only for variables the user has not set: short HTTP time-outs and few retries (a dead server costs
# seconds, not minutes), no run links printed to stdout (stdout is the CLI's; see
# `MlflowTracker.run_url`) and no download progress bars.
ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

# The most a render waits for tracking, all its MLflow calls together (start, per-step logging, end); then
# it goes on untracked with one warning (tracker.MlflowTracker._guarded). The HTTP time-out bounds each read,
# not a call: a server that answers a byte every few seconds would otherwise hold a render forever.
TRACKING_DEADLINE_S = 120.0

# os.environ is process-wide: one lock serialises every stretch of MLflow calls made under ENV_DEFAULTS.
_ENV_LOCK = threading.RLock()


@contextlib.contextmanager
def http_env() -> Iterator[None]:
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


def resolve_uri(tracking_uri: str | None) -> str:
    """The tracking URI given, else MLflow's own (MLFLOW_TRACKING_URI or the installed version's default)."""
    import mlflow

    # mlflow.get_tracking_uri(): MLFLOW_TRACKING_URI, else the installed version's default store.
    return str(tracking_uri) if tracking_uri else mlflow.get_tracking_uri()


def mlflow_limits() -> tuple[int, int, int]:
    """The installed MLflow's (param value length, params+tags per batch, metrics per batch)."""
    try:
        from mlflow.utils import validation as v

        return v.MAX_PARAM_VAL_LENGTH, v.MAX_PARAMS_TAGS_PER_BATCH, v.MAX_METRICS_PER_BATCH
    except Exception:  # noqa: BLE001 - a future MLflow moved them: the known values
        return MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH, MAX_METRICS_PER_BATCH


def short_error(exc: BaseException, limit: int = 240) -> str:
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


def connect(tracking_uri: str | None) -> tuple[str, Any]:
    """(resolved URI, MlflowClient) with the store opened (sqlite: migrations checked): the slow part
    of tracking start-up (import mlflow, open the store), done before a render's clock or beside it."""
    from mlflow import MlflowClient

    uri = resolve_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    client.search_experiments(max_results=1)
    return uri, client


class Connection:
    """`connect` in a background thread, started at once; `get()` waits for it (re-raising its error)."""

    def __init__(self, tracking_uri: str | None) -> None:
        self._result: tuple[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(tracking_uri,), daemon=True,
                                        name="disco-spec-mlflow-connect")
        self._thread.start()

    def _run(self, tracking_uri: str | None) -> None:
        try:
            with http_env():
                self._result = connect(tracking_uri)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of get()
            self._error = exc

    def get(self) -> tuple[str, Any]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def experiment_id(client: Any, name: str) -> str:
    """The id of the active experiment `name`, created when missing, tagged `mlflow.experimentKind =
    custom_model_development` (which MLflow 3.17's UI does not read: ui.py's docstring says what it does)."""
    from mlflow.exceptions import MlflowException

    from .ui import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:
            exp = client.get_experiment_by_name(name)  # created meanwhile by another render
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise RuntimeError(
            f"experiment {name!r} is deleted; restore it (mlflow experiments restore) or pass another --experiment"
        )
    if EXPERIMENT_KIND_TAG not in (exp.tags or {}):  # made by an older disco-spec, or by hand
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id

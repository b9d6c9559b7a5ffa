"""The MLflow UI for disco-spec's runs: the experiment kind tag, the URLs of runs and of an experiment's
runs table in the "Model training" view, and `serve_ui`, which starts MLflow's UI on loopback for the
store disco-spec writes to.

What MLflow 3's UI does (read in the bundle MLflow 3.17 ships, mlflow/server/js/build/static/js: the hook
that returns an experiment's kind): it checks a feature flag that the build hard-wires to true, so the
kind comes from the workflow type alone, which is the `workflowType` URL parameter (`machine_learning` is
"Model training", `genai` GenAI), else the GenAI / Model training switch in the side bar, kept in the
browser's local storage (`mlflow.workflowType`, GenAI in a fresh browser). The experiment's
`mlflow.experimentKind` tag is read only when that flag is off, which it never is in 3.17; the kind selector
in the experiment header still writes it. So a bare experiment URL opens GenAI's empty traces overview
whatever the tag says (seen with headless Chromium too), and disco-spec puts `?workflowType=machine_learning`
in every URL it prints. It still tags the experiments it creates (`custom_model_development`): harmless,
and what MLflow versions that read the tag use.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, TextIO

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # the UI's "Model training" (MLflow >= 3)
VIEW_QUERY = "workflowType=machine_learning"
DEFAULT_UI_PORT = 5000
LOOPBACK = "127.0.0.1"


def is_server_uri(uri: str | None) -> bool:
    return bool(uri) and str(uri).startswith(("http://", "https://"))


def ui_base(tracking_uri: str | None, port: int = DEFAULT_UI_PORT) -> str:
    """Where the UI for `tracking_uri` is: the server itself, else `disco-spec ui` on loopback."""
    if is_server_uri(tracking_uri):
        return str(tracking_uri).rstrip("/")
    return f"http://{LOOPBACK}:{port}"


def runs_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table in the "Model training" view."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{VIEW_QUERY}"


def run_page_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{VIEW_QUERY}"


def ui_command(tracking_uri: str | None) -> str | None:
    """The command that serves the UI for a local store (None for a server: open its URL)."""
    if is_server_uri(tracking_uri):
        return None
    if not tracking_uri:
        return "disco-spec ui"
    return f"disco-spec ui --tracking-uri '{tracking_uri}'"


def where_to_look(tracking_uri: str | None, experiment_id: str | None, run_id: str | None) -> list[str]:
    """The lines `render` and `sweep` print after a tracked run: its URL, and how to serve it."""
    if experiment_id is None or run_id is None:
        return []
    base = ui_base(tracking_uri)
    lines = [f"MLflow run: {run_page_url(base, experiment_id, run_id)}",
             f"MLflow runs: {runs_url(base, experiment_id)}"]
    command = ui_command(tracking_uri)
    if command:
        lines.append(f"  (serve them with: {command})")
    return lines


# ---------------------------------------------------------------------------------------------
# disco-spec ui
# ---------------------------------------------------------------------------------------------


def local_artifact_root(tracking_uri: str) -> str | None:
    """For a local store (sqlite or a folder): the ./mlruns folder new experiments' artifacts go to.

    Runs keep the artifact location they were created with (recorded in the store); this is only the
    root for experiments created from the UI, beside the store as MLflow's default puts it.
    """
    if tracking_uri.startswith("sqlite:///"):
        return str(Path.cwd() / "mlruns")
    return None


def server_command(tracking_uri: str, port: int, *, python: str | None = None) -> list[str]:
    """`mlflow server` on loopback for `tracking_uri` (the UI and the REST API; artifacts served)."""
    cmd = [python or sys.executable, "-m", "mlflow", "server", "--host", LOOPBACK, "--port", str(port),
           "--backend-store-uri", tracking_uri, "--workers", "1"]
    root = local_artifact_root(tracking_uri)
    if root is not None:
        cmd += ["--default-artifact-root", root]
    return cmd


def wait_healthy(base: str, proc: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def experiment_urls(tracking_uri: str, base: str) -> list[tuple[str, str]]:
    """(experiment name, runs URL) for every active experiment of the store that has runs."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    out = []
    for exp in client.search_experiments():
        if exp.name == "Default" and not client.search_runs([exp.experiment_id], max_results=1):
            continue
        out.append((exp.name, runs_url(base, exp.experiment_id)))
    return out


def serve_ui(tracking_uri: str, port: int, *, echo: Callable[[str], None], stream: TextIO | None = None,
             boot_timeout_s: float = 120.0) -> int:
    """Start MLflow's UI on 127.0.0.1:`port` for `tracking_uri`, print the runs URLs, wait until it exits.

    Returns the server's exit status (0 after Ctrl-C). The server's own log goes to `stream` (stderr).
    """
    import signal

    base = ui_base(None, port)

    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the server too (it runs in its own session)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    env = dict(os.environ)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no job runner: boots faster
    proc = subprocess.Popen(server_command(tracking_uri, port), stdout=stream or sys.stderr,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        if not wait_healthy(base, proc, boot_timeout_s):
            echo(f"error: the MLflow UI did not start on {base} (port in use? see the log above)")
            _stop(proc)
            return proc.returncode or 1
        echo(f"MLflow UI for {tracking_uri} at {base}")
        for name, url in experiment_urls(tracking_uri, base):
            echo(f"  {name}: {url}")
        echo("Press Ctrl-C to stop it.")
        return proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(proc: Any) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)

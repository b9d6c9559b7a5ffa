"""Reading tracked runs back: recognising an MLflow run id (`looks_like_run_id`), downloading a run's
manifest, spec, plan and outputs into a folder that is a run folder again (`resolve_run_source`), and
the source resolver that lets `rebuild` and `diff` take run ids (`register_run_resolver`). A store that
cannot be reached is a `TrackingError` (exit 1); a malformed or unknown run id is a SpecError (exit 2).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import DiscoSpecError, SpecError
from .client import http_env, resolve_uri, short_error
from .params import dig

_RUN_ID = re.compile(r"^(?:runs:/)?([0-9a-f]{32})/?$")


class TrackingError(DiscoSpecError):
    """The tracking store could not be reached or did not answer as expected (used by resolve_run_source)."""

    exit_code = 1


def looks_like_run_id(text: str) -> bool:
    """True for an MLflow run id (32 hex digits) or `runs:/<id>`, and not an existing file."""
    return bool(_RUN_ID.match(str(text).strip())) and not Path(text).exists()


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
    with http_env():
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        uri = resolve_uri(tracking_uri)
        client = MlflowClient(tracking_uri=uri)
        try:
            client.get_run(rid)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                raise SpecError(
                    f"run {rid} not found at {uri}", [("RUN_ID", f"no MLflow run {rid} at {uri}")]
                ) from exc
            raise TrackingError(f"could not read run {rid} from {uri}: {short_error(exc)}") from exc
        except Exception as exc:  # noqa: BLE001 - connection errors come in several types
            raise TrackingError(f"could not read run {rid} from {uri}: {short_error(exc)}") from exc
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
            raise TrackingError(f"could not download the artifacts of run {rid} from {uri}: {short_error(exc)}") from exc
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
    from ..errors import SpecError
    from ..record.manifest_schema import read_json_file

    try:
        manifest = read_json_file(manifest_path)  # the one bounded reader
    except SpecError:
        return
    records = dig(manifest, "hashed.outputs", "outputs") or []
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
    """A source resolver for disco_spec.repro.sources.register_source_resolver: MLflow run id -> local manifest.

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
    from ..repro.sources import register_source_resolver, unregister_source_resolver

    global _REGISTERED
    if _REGISTERED is not None:
        unregister_source_resolver(_REGISTERED)
    _REGISTERED = mlflow_run_resolver(tracking_uri)
    register_source_resolver(_REGISTERED)
    return _REGISTERED


_REGISTERED: Any = None

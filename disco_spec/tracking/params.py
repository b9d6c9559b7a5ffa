"""Names and values for MLflow: the spec document as params (flattened to dotted keys, keys sanitised to
the characters and length MLflow accepts, values as strings within its length limit), the spec's
SHA-256, and `_dig`, the dotted-path lookup that reads values back out of nested documents such as
manifests. MLflow's limits are copied here, so this module never imports mlflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ..run.records import canonical_json

# MLflow's limits (mlflow.utils.validation), copied so that importing the tracking modules does not import mlflow.
# The installed MLflow's values are used when it is imported (see tracking_client._limits()).
MAX_PARAM_VAL_LENGTH = 6000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITY_KEY_LENGTH = 250
MAX_TAG_VAL_LENGTH = 8000

TRUNCATED_MARKER = "...[truncated: the full value is in the spec.json artifact]"

_BAD_KEY_CHARS = re.compile(r"[^\w.\- /]")  # MLflow allows [/\w.\- :]; ':' is refused on Windows servers
_BAD_IMAGE_KEY_CHARS = re.compile(r"[^a-zA-Z0-9_\-./ ]")


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

"""Names and values for MLflow: the settings a person reads as params (`spec_params`: the settings DD
users change, and every setting that differs from DD 5.2's default, as dotted keys sanitised to the
characters and length MLflow accepts, values as written: 5000, not 5000.0), the spec's SHA-256, and
`_dig`, the dotted-path lookup that reads values back out of nested documents such as manifests.
MLflow's limits are copied here, so this module never imports mlflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ..record.ids import spec_sha256  # noqa: F401 - the manifest's spec hash, re-exported for the tracker

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


def _as_written(value: Any) -> Any:
    """Whole floats as ints (a spec's `5000` is validated to 5000.0; people search for '5000')."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_as_written(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_written(v) for k, v in value.items()}
    return value


def param_value(value: Any) -> str:
    """A param value as a person reads it: strings as they are, the rest as JSON with whole numbers as ints."""
    value = _as_written(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# Settings DD users change (the user guide's "commonly changed"): always logged.
COMMON_SETTINGS = (
    "diffusion.width_height", "diffusion.steps", "init.skip_steps", "run.set_seed", "run.n_batches",
    "guidance.clip_guidance_scale", "guidance.tv_scale", "guidance.range_scale", "guidance.sat_scale",
    "init.init_scale", "init.init_image", "cuts.cutn_batches", "cuts.cut_overview", "cuts.cut_innercut",
    "cuts.cut_icgray_p", "cuts.cut_ic_pow", "diffusion.eta", "diffusion.diffusion_sampling_mode",
    "models.diffusion_model", "models.use_secondary_model", "animation.animation_mode",
)
# The motion of an animation: logged when the spec animates (2D, 3D, Video Input).
MOTION_SETTINGS = (
    "animation.max_frames", "animation.frames_scale", "animation.frames_skip_steps", "animation.angle",
    "animation.zoom", "animation.translation_x", "animation.translation_y", "animation.translation_z",
    "animation.rotation_3d_x", "animation.rotation_3d_y", "animation.rotation_3d_z",
)
# Not settings: the editor's schema link, the format version, import provenance, the name (the
# experiment) and the description (the run's description, `mlflow.note.content`).
NOT_PARAMS = ("$schema", "schema_version", "imported_from", "name", "description")
CLIP_PARAM = "models.clip"  # the CLIP models used, in DD's order, then extra_clip_models: 'ViTB32, RN50'


def dd_default_document() -> dict[str, Any]:
    """The spec document with every setting at DD 5.2's default (what `spec_params` compares with)."""
    from ..spec.load import spec_to_document
    from ..spec.models import JobSpec

    return spec_to_document(JobSpec(schema_version=1))


def _clip_models(doc: dict[str, Any]) -> str:
    from ..spec.models import DD_CLIP_NAMES

    models = doc.get("models") or {}
    names = [n for n in DD_CLIP_NAMES if models.get(n) is True]
    names += [str(m.get("name")) for m in models.get("extra_clip_models") or [] if isinstance(m, dict)]
    return ", ".join(names) or "none"


def readable_settings(doc: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dotted path -> value of the settings worth a column: the common ones (present in `doc`), the
    motion ones when animated, frame 0's prompts, the CLIP models, and every leaf differing from DD."""
    flat = flatten_spec({k: v for k, v in doc.items() if k not in NOT_PARAMS})
    base = flatten_spec(defaults if defaults is not None else dd_default_document())
    keep = [k for k in COMMON_SETTINGS if k in flat]
    if _dig(doc, "animation.animation_mode") not in (None, "None"):
        keep += [k for k in MOTION_SETTINGS if k in flat]
    prompts = _dig(doc, "prompts.text_prompts") or {}
    out: dict[str, Any] = {k: flat[k] for k in keep}
    if isinstance(prompts, dict) and "0" in prompts:
        out["prompts.text_prompts.0"] = prompts["0"]
    image_prompts = _dig(doc, "prompts.image_prompts")
    if isinstance(image_prompts, dict) and "0" in image_prompts:
        out["prompts.image_prompts.0"] = image_prompts["0"]
    for key, value in flat.items():
        if key not in out and (key not in base or _as_written(base[key]) != _as_written(value)):
            out[key] = value
    return out


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


def spec_params(
    doc: dict[str, Any], limit: int = MAX_PARAM_VAL_LENGTH, defaults: dict[str, Any] | None = None
) -> dict[str, str]:
    """The params logged for a spec document (`readable_settings`, plus `models.clip`): sanitised dotted
    keys -> string values within `limit`. The whole document is the run's `spec.json` artifact."""
    params: dict[str, str] = {}
    settings = readable_settings(doc, defaults)
    if isinstance(doc.get("models"), dict):
        settings[CLIP_PARAM] = _clip_models(doc)
    for key, value in settings.items():
        name = sanitize_key(key)
        unique, n = name, 2
        while unique in params:  # two keys that differ only in refused characters
            unique = f"{name}_{n}"
            n += 1
        params[unique] = truncate_value(param_value(value), limit)
    return params


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

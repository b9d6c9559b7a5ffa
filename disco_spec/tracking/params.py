"""Names and values for MLflow: the settings a person reads as params (`spec_params`: the settings DD
users change, and every setting that differs from DD 5.2's default, as dotted keys sanitised to the
characters and length MLflow accepts, values as written: 5000, not 5000.0), the spec's SHA-256, and
`dig`, the dotted-path lookup that reads values back out of nested documents such as manifests.
MLflow's limits are copied here, so this module never imports mlflow.

Params are the settings that apply to the render (`applies`): a still logs no animation, 3D camera,
turbo, VR, Video Input or video settings; an animation no `n_batches`; a 2D one no 3D motion, a 3D
one no `angle`/`zoom`. Every setting reads one way (`setting_values`): key-frame tables in DD's string
form (`0: (1), 10: (1.05)`), cut schedules in DD's list expression (`[12]*400+[4]*600`), prompt
tables one param per frame (`prompts.text_prompts.0`), and no nulls in lists of tables.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ..record.ids import spec_sha256  # noqa: F401 - the manifest's spec hash, re-exported for the tracker

# MLflow's limits (mlflow.utils.validation), copied so that importing the tracking modules does not import mlflow.
# The installed MLflow's values are used when it is imported (see client.mlflow_limits()).
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


def as_written(value: Any) -> Any:
    """Whole floats as ints (a spec's `5000` is validated to 5000.0; people search for '5000')."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [as_written(v) for v in value]
    if isinstance(value, dict):
        return {k: as_written(v) for k, v in value.items()}
    return value


def param_value(value: Any) -> str:
    """A param value as a person reads it: strings as they are, the rest as JSON with whole numbers as ints."""
    value = as_written(value)
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
    for m in models.get("extra_clip_models") or []:
        if isinstance(m, dict):
            names.append(str(m.get("name") or "/".join(str(m[k]) for k in ("arch", "pretrained") if m.get(k))))
    return ", ".join(names) or "none"


# What applies in each animation mode, as DD 5.2's disco.py uses it: do_run's `animation_mode == "2D"` branch
# moves by angle, zoom and translation_x/y, its "3D" branch (do_3d_step) by translation_x/y/z and
# rotation_3d_*; the animation-settings cell turns turbo_mode and vr_mode off unless 3D and sets max_frames to
# the extracted frame count in Video Input; the Do the Run cell sets n_batches to 1 when animating.
ANIMATION_ONLY_SECTIONS = ("animation", "camera_3d", "video_input", "turbo", "vr", "video")
MOTION_2D = ("angle", "zoom", "translation_x", "translation_y")
MOTION_3D = ("translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z")
MOTION_ALL = tuple(dict.fromkeys(MOTION_2D + MOTION_3D))
CUT_SCHEDULES = ("cuts.cut_overview", "cuts.cut_innercut", "cuts.cut_icgray_p")


def applies(path: str, mode: str | None) -> bool:
    """Whether the setting at dotted `path` is used by a render in animation mode `mode` ('None', '2D', ...)."""
    section, _, rest = path.partition(".")
    name = rest.split(".", 1)[0]
    mode = mode or "None"
    if mode == "None":
        return section not in ANIMATION_ONLY_SECTIONS or path == "animation.animation_mode"
    if path == "run.n_batches":
        return False
    if section in ("camera_3d", "turbo", "vr"):
        return mode == "3D"
    if section == "video_input":
        return mode == "Video Input"
    if section == "animation" and name in MOTION_ALL:
        return name in (MOTION_2D if mode == "2D" else MOTION_3D if mode == "3D" else ())
    if path == "animation.max_frames":
        return mode != "Video Input"
    return True


def _number_text(x: Any) -> str:
    return json.dumps(as_written(x))


def _keyframe_text(table: dict[str, Any]) -> str:
    """A key-frame table as DD writes key frames: `0: (1), 10: (1.05)`."""
    keys = sorted(table, key=lambda k: int(k) if str(k).lstrip("-").isdigit() else 0)
    return ", ".join(f"{k}: ({_number_text(table[k])})" for k in keys)


def _cut_schedule_text(segments: list[Any]) -> str:
    """A structured cut schedule as DD's list expression: `[12]*400+[4]*600`."""
    return "+".join(f"[{_number_text(s.get('value'))}]*{_number_text(s.get('units'))}" for s in segments)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def setting_values(doc: dict[str, Any]) -> dict[str, Any]:
    """The spec's settings as dotted path -> value, each kind of value in one readable form (module doc):
    key-frame tables and structured cut schedules as DD's strings, prompt tables one key per frame, no
    nulls inside lists. Sections and tables that are empty stay one key, so no setting disappears."""
    flat = flatten_spec({k: v for k, v in doc.items() if k not in NOT_PARAMS}, tables=_keyframe_paths())
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key in _keyframe_paths() and isinstance(value, dict):
            value = _keyframe_text(value)
        elif key in CUT_SCHEDULES and isinstance(value, list) and all(isinstance(s, dict) for s in value):
            value = _cut_schedule_text(value)
        elif isinstance(value, list):
            value = _without_nulls(value)
        out[key] = value
    return out


def _keyframe_paths() -> frozenset[str]:
    return frozenset(f"animation.{m}" for m in MOTION_ALL)


def readable_settings(doc: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dotted path -> value of the settings worth a column, of those that apply (`applies`): the common
    ones, the motion ones when animated, frame 0's prompts, and every setting that differs from DD."""
    mode = dig(doc, "animation.animation_mode") or "None"
    # a null is a setting left unset (init_image = None): no param says the same without a 'null' to read
    flat = {k: v for k, v in setting_values(doc).items() if applies(k, mode) and v is not None}
    base = setting_values(defaults if defaults is not None else dd_default_document())
    keep = [k for k in COMMON_SETTINGS if k in flat]
    if mode != "None":
        keep += [k for k in MOTION_SETTINGS if k in flat]
    out: dict[str, Any] = {k: flat[k] for k in keep}
    for which in ("prompts.text_prompts.0", "prompts.image_prompts.0"):
        if which in flat:
            out[which] = flat[which]
    for key, value in flat.items():
        if key not in out and (key not in base or as_written(base[key]) != as_written(value)):
            out[key] = value
    return out


def flatten_spec(doc: dict[str, Any], prefix: str = "", *, tables: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Dotted keys for nested dicts: {'guidance': {'tv_scale': 0}} -> {'guidance.tv_scale': 0}.

    Lists are leaves (logged as JSON); an empty dict is a leaf too, so no section disappears; so is a
    dict at a path in `tables` (a setting whose value is a table, e.g. key frames).
    """
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name not in tables:
            flat.update(flatten_spec(value, name + ".", tables=tables))
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


def dig(doc: Any, *paths: str) -> Any:
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

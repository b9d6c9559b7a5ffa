"""Import a Disco Diffusion settings report (`{batch_name}({batchNum})_settings.txt`) as a job spec.

DD writes the report (JSON) next to its images (dd52-behaviour §4.3). It holds 66 notebook settings in
5.2, named exactly like the spec's fields, so most keys map one to one onto a spec section. What the
report lacks (animation mode, n_batches, display rate, saves, VR, video cell, ...) is filled from
DD's defaults or a documented heuristic, and every such spec path is listed in `assumed`. Keys from
other DD versions are recognised by the fingerprints of §4.3 / §5.7 / §9: some are converted (pre-5.1
radians, 5.5 OpenCLIP models, 5.4 Video Input overrides), the rest are named in a warning. No report
key is dropped silently.

Standard library + pydantic + tomli-w only (no torch), like the rest of `disco_spec.spec`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import SpecError
from . import schedules
from .load import validate_document
from .models import MOTION_FIELDS, SCHEMA_VERSION, JobSpec

__all__ = ["ImportResult", "import_dd_report", "report_to_toml", "REPORT_KEYS_52", "REPORT_KEY_MAP", "detect_version"]


@dataclass
class ImportResult:
    document: dict  # a spec document (plain dict) that validates with validate_document
    detected_version: str  # "5.1-5.2", "5.0", "5.1 (early, turbo_frame_blend)", ">=5.3", ">=5.4", ">=5.5", ...
    assumed: list[str] = field(default_factory=list)  # dotted spec paths whose values were NOT in the report
    warnings: list[str] = field(default_factory=list)  # unmapped keys, version notes, conversions, ...


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

# The 66 keys of a DD 5.2 report, in file order (§4.3).
REPORT_KEYS_52: tuple[str, ...] = (
    "text_prompts", "image_prompts", "clip_guidance_scale", "tv_scale", "range_scale", "sat_scale",
    "cutn_batches", "max_frames", "interp_spline", "init_image", "init_scale", "skip_steps", "frames_scale",
    "frames_skip_steps", "perlin_init", "perlin_mode", "skip_augs", "randomize_class", "clip_denoised",
    "clamp_grad", "clamp_max", "seed", "fuzzy_prompt", "rand_mag", "eta", "width", "height", "diffusion_model",
    "use_secondary_model", "steps", "diffusion_steps", "diffusion_sampling_mode",
    "ViTB32", "ViTB16", "ViTL14", "RN101", "RN50", "RN50x4", "RN50x16", "RN50x64",
    "cut_overview", "cut_innercut", "cut_ic_pow", "cut_icgray_p", "key_frames",
    "angle", "zoom", "translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y",
    "rotation_3d_z", "midas_depth_model", "midas_weight", "near_plane", "far_plane", "fov", "padding_mode",
    "sampling_mode", "video_init_path", "extract_nth_frame", "video_init_seed_continuity", "turbo_mode",
    "turbo_steps", "turbo_preroll",
)

_SECTION_OF: dict[str, str] = {
    **dict.fromkeys(("text_prompts", "image_prompts"), "prompts"),
    **dict.fromkeys(("clip_guidance_scale", "tv_scale", "range_scale", "sat_scale", "clamp_grad", "clamp_max",
                     "fuzzy_prompt", "rand_mag"), "guidance"),
    **dict.fromkeys(("cutn_batches", "skip_augs", "cut_overview", "cut_innercut", "cut_ic_pow", "cut_icgray_p"), "cuts"),
    **dict.fromkeys(("max_frames", "interp_spline", "frames_scale", "frames_skip_steps", "key_frames", *MOTION_FIELDS),
                    "animation"),
    **dict.fromkeys(("init_image", "init_scale", "skip_steps", "perlin_init", "perlin_mode"), "init"),
    **dict.fromkeys(("randomize_class", "clip_denoised", "eta", "steps", "diffusion_sampling_mode"), "diffusion"),
    **dict.fromkeys(("diffusion_model", "use_secondary_model", "ViTB32", "ViTB16", "ViTL14", "RN101", "RN50",
                     "RN50x4", "RN50x16", "RN50x64"), "models"),
    **dict.fromkeys(("midas_depth_model", "midas_weight", "near_plane", "far_plane", "fov", "padding_mode",
                     "sampling_mode"), "camera_3d"),
    **dict.fromkeys(("video_init_path", "extract_nth_frame", "video_init_seed_continuity"), "video_input"),
    **dict.fromkeys(("turbo_mode", "turbo_steps", "turbo_preroll"), "turbo"),
}

# Report key -> spec path it is written to. `diffusion_steps` is derived from `steps` (§2.18): it is
# checked against the report, not written.
REPORT_KEY_MAP: dict[str, str | None] = {
    key: f"{_SECTION_OF[key]}.{key}" for key in REPORT_KEYS_52 if key in _SECTION_OF
}
REPORT_KEY_MAP.update({
    "seed": "run.set_seed",
    "width": "diffusion.width_height[0]",
    "height": "diffusion.width_height[1]",
    "diffusion_steps": None,
})
assert set(REPORT_KEY_MAP) == set(REPORT_KEYS_52) and len(REPORT_KEYS_52) == 66

_INT_KEYS = {"cutn_batches", "max_frames", "skip_steps", "steps", "extract_nth_frame", "turbo_preroll",
             "width", "height", "seed", "diffusion_steps"}
_FLOAT_KEYS = {"clip_guidance_scale", "tv_scale", "range_scale", "sat_scale", "init_scale", "frames_scale",
               "clamp_max", "rand_mag", "eta", "midas_weight", "near_plane", "far_plane", "fov"}
_BOOL_KEYS = {"perlin_init", "skip_augs", "randomize_class", "clip_denoised", "clamp_grad", "fuzzy_prompt",
              "use_secondary_model", "ViTB32", "ViTB16", "ViTL14", "RN101", "RN50", "RN50x4", "RN50x16",
              "RN50x64", "key_frames", "video_init_seed_continuity", "turbo_mode"}

# DD settings that the report never holds (§4.3 "Not in the report"): DD defaults, listed as assumed.
NOT_IN_REPORT: tuple[str, ...] = (
    "run.n_batches", "run.display_rate", "run.resume_run", "run.run_to_resume", "run.resume_from_frame",
    "run.retain_overwritten_frames", "models.use_checkpoint", "models.check_model_SHA",
    "animation.animation_mode", "vr.vr_mode", "vr.vr_eye_angle", "vr.vr_ipd",
    "saving.intermediate_saves", "saving.intermediates_in_subfolder",
    "video.skip_video_for_run_all", "video.init_frame", "video.last_frame", "video.fps",
)

DD52_DIFFUSION_MODELS = ("512x512_diffusion_uncond_finetune_008100", "256x256_diffusion_uncond")
ANIMATION_MODES = ("None", "2D", "3D", "Video Input")

# Version fingerprints (§4.3, §9).
V53_KEYS = ("ViTL14_336px", "use_horizontal_symmetry", "use_vertical_symmetry", "transformation_percent")
V54_KEYS = (
    "video_init_steps", "video_init_clip_guidance_scale", "video_init_tv_scale", "video_init_range_scale",
    "video_init_sat_scale", "video_init_cutn_batches", "video_init_skip_steps", "video_init_frames_scale",
    "video_init_frames_skip_steps", "video_init_flow_warp", "video_init_flow_blend",
    "video_init_check_consistency", "video_init_blend_mode",
)
# In Video Input mode 5.4+ renders with these instead of the main settings (their own code says so).
V54_VIDEO_OVERRIDES = {
    "video_init_steps": "steps", "video_init_clip_guidance_scale": "clip_guidance_scale",
    "video_init_tv_scale": "tv_scale", "video_init_range_scale": "range_scale", "video_init_sat_scale": "sat_scale",
    "video_init_cutn_batches": "cutn_batches", "video_init_skip_steps": "skip_steps",
    "video_init_frames_scale": "frames_scale", "video_init_frames_skip_steps": "frames_skip_steps",
}
# CLIP checkboxes added after 5.2 -> open_clip (architecture, pretrained tag), as DD 5.3/5.5 load them.
LATER_CLIP_MODELS: dict[str, tuple[str, str]] = {
    "ViTL14_336px": ("ViT-L-14-336", "openai"),  # 5.3: OpenAI CLIP 'ViT-L/14@336px'
    "ViTB32_laion2b_e16": ("ViT-B-32", "laion2b_e16"),
    "ViTB32_laion400m_e31": ("ViT-B-32", "laion400m_e31"),
    "ViTB32_laion400m_32": ("ViT-B-32", "laion400m_e32"),  # DD's key drops the 'e'; the tag is e32
    "ViTB32quickgelu_laion400m_e31": ("ViT-B-32-quickgelu", "laion400m_e31"),
    "ViTB32quickgelu_laion400m_e32": ("ViT-B-32-quickgelu", "laion400m_e32"),
    "ViTB16_laion400m_e31": ("ViT-B-16", "laion400m_e31"),
    "ViTB16_laion400m_e32": ("ViT-B-16", "laion400m_e32"),
    "RN50_yffcc15m": ("RN50", "yfcc15m"),  # DD's key misspells yfcc
    "RN50_cc12m": ("RN50", "cc12m"),
    "RN50_quickgelu_yfcc15m": ("RN50-quickgelu", "yfcc15m"),
    "RN50_quickgelu_cc12m": ("RN50-quickgelu", "cc12m"),
    "RN101_yfcc15m": ("RN101", "yfcc15m"),
    "RN101_quickgelu_yfcc15m": ("RN101-quickgelu", "yfcc15m"),
}
OPENCLIP_KEYS = tuple(k for k in LATER_CLIP_MODELS if k != "ViTL14_336px")
LDSR_KEYS = ("sharpen_preset", "keep_unsharp")  # ≤ early 5.1 (§5.7)
_3D_RESAMPLING = ("bicubic", "bilinear", "nearest")

_REPORT_NAME = (
    re.compile(r"^(?P<name>.+)\((?P<num>\d+)\)_settings\.txt$"),
    re.compile(r"^(?P<name>.+)-(?P<num>\d+)_settings\.txt$"),
)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def import_dd_report(path: str | Path, *, animation_mode: str | None = None) -> ImportResult:
    """Read a DD settings report and return a validated spec document with its provenance."""
    path = Path(path)
    warnings: list[str] = []
    report = _read_report(path, warnings)
    batch_name, batch_num, separator = _parse_file_name(path, warnings)
    version = detect_version(report)
    imp = _Importer(path, report, batch_name, batch_num, separator, version, warnings)
    imp.run(animation_mode)
    return imp.result()


def report_to_toml(result: ImportResult) -> str:
    """The imported spec as readable TOML: a header comment, then sections in the spec's order."""
    doc = result.document
    source = (doc.get("imported_from") or {}).get("source", "a DD settings report")
    lines = [
        f"# Imported by `disco-spec import-dd` from {source} (DD version: {result.detected_version}).",
        f"# {len(result.assumed)} values are not in the report: DD defaults or guesses, listed in",
        "# imported_from.assumed. Check animation.animation_mode and run.n_batches in particular,",
        f"# and read the {len(result.warnings)} notes in imported_from.warnings.",
    ]
    ordered = {k: doc[k] for k in _top_level_order() if k in doc}
    ordered.update({k: v for k, v in doc.items() if k not in ordered})
    return "\n".join(lines) + "\n\n" + tomli_w.dumps(_drop_none(ordered))


def detect_version(report: dict[str, Any]) -> str:
    """Which DD version wrote a report, from the keys it holds (§4.3 fingerprint table)."""
    keys = set(report)
    if keys & set(OPENCLIP_KEYS) or isinstance(report.get("cut_ic_pow"), str):
        return ">=5.5"
    if keys & set(V54_KEYS):
        return ">=5.4"
    if keys & set(V53_KEYS):
        return ">=5.3"
    if "turbo_frame_blend" in keys:
        return "5.1 (early, turbo_frame_blend)"
    if "diffusion_sampling_mode" not in keys:
        # 5.0 introduced 3D; a report with no 3D settings predates it.
        has_3d = keys & {"translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z"}
        return "5.0" if has_3d else "<=5.0 (no 3D settings)"
    if keys & set(LDSR_KEYS):
        return "5.1 (early, sharpen_preset)"  # LDSR removed on 2022-04-04, days after 5.1
    return "5.1-5.2"


def _is_pre51(version: str) -> bool:
    return version.startswith("5.0") or version.startswith("<=5.0")


def _is_pre53(version: str) -> bool:
    return not version.startswith(">=")


# ---------------------------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------------------------


def _read_report(path: Path, warnings: list[str]) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}", [(str(path), f"cannot read: {exc.strerror or exc}")])
    text = _decode(raw, path, warnings)
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        loc = f"{path}:{exc.lineno}:{exc.colno}"
        raise SpecError(f"{loc}: invalid JSON: {exc.msg}", [(loc, f"invalid JSON: {exc.msg}")])
    if not isinstance(report, dict):
        msg = f"a DD settings report is a JSON object (got a {type(report).__name__})"
        raise SpecError(f"{path}: {msg}", [(str(path), msg)])
    return report


def _decode(raw: bytes, path: Path, warnings: list[str]) -> str:
    """UTF-8 first; DD 5.2 wrote the platform encoding (cp1252 on Windows), so fall back to it, then latin-1."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    for encoding in ("cp1252", "latin-1"):  # latin-1 decodes any byte string
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        warnings.append(f"{path.name} is not UTF-8; decoded as {encoding} (DD before 5.6 wrote the report "
                        "in the platform's default encoding): check non-ASCII prompts")
        return text
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


def _parse_file_name(path: Path, warnings: list[str]) -> tuple[str, int | None, str | None]:
    """batch_name and batchNum from `{batch_name}({batchNum})_settings.txt` or `{batch_name}-{batchNum}_...`."""
    for separator, pattern in zip(("()", "-"), _REPORT_NAME):
        m = pattern.match(path.name)
        if m:
            return m.group("name"), int(m.group("num")), separator
    stem = path.stem[: -len("_settings")] if path.stem.endswith("_settings") else path.stem
    warnings.append(f"file name {path.name!r} is not '{{batch_name}}({{batchNum}})_settings.txt'; "
                    f"batch_name taken as {stem!r}, batchNum unknown")
    return stem or "TimeToDisco", None, None


# ---------------------------------------------------------------------------------------------
# The importer
# ---------------------------------------------------------------------------------------------


class _Importer:
    """Builds the spec document from one report. `values` maps (section, field) -> value."""

    def __init__(self, path: Path, report: dict[str, Any], batch_name: str, batch_num: int | None,
                 separator: str | None, version: str, warnings: list[str]):
        self.path = path
        self.report = report
        self.batch_name = batch_name
        self.batch_num = batch_num
        self.separator = separator
        self.version = version
        self.warnings = warnings
        self.assumed: list[str] = []
        self.values: dict[tuple[str, str], Any] = {}
        self.extra_clip: list[dict[str, str]] = []
        self.mode_from_user = False

    # -- helpers --------------------------------------------------------------------------------

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def assume(self, dotted: str) -> None:
        if dotted not in self.assumed:
            self.assumed.append(dotted)

    def set(self, dotted: str, value: Any) -> None:
        section, name = dotted.split(".", 1)
        self.values[(section, name)] = value

    def get(self, dotted: str, default: Any = None) -> Any:
        section, name = dotted.split(".", 1)
        return self.values.get((section, name), default)

    def fail(self, key: str, msg: str) -> SpecError:
        return SpecError(f"{self.path.name}: report key {key!r}: {msg}", [(key, msg)])

    # -- steps ------------------------------------------------------------------------------------

    def run(self, animation_mode: str | None) -> None:
        self.warn(_version_note(self.version))
        self.set("run.batch_name", self.batch_name)
        self.map_52_keys()
        self.handle_sampler()
        self.handle_rotations()
        self.handle_later_keys()
        self.choose_animation_mode(animation_mode)
        self.choose_n_batches()
        self.fill_not_in_report()
        self.version_specific_notes()

    def map_52_keys(self) -> None:
        """Every 5.2 key to its field of the same name (conversions where the spec's type differs)."""
        r = self.report
        for key in REPORT_KEYS_52:
            if key not in r:
                self.missing_key(key)
                continue
            value = self.coerce(key, r[key])
            if key in ("text_prompts", "image_prompts"):
                self.set(f"prompts.{key}", self.prompt_schedule(key, value))
            elif key == "seed":
                self.set("run.set_seed", value)
            elif key in ("width", "height"):
                wh = list(self.get("diffusion.width_height") or _default("diffusion", "width_height"))
                wh[0 if key == "width" else 1] = value
                self.set("diffusion.width_height", wh)
            elif key == "diffusion_steps":
                continue  # checked below, once steps is known
            elif key == "interp_spline":
                self.set("animation.interp_spline", self.interp_spline(value))
            elif key == "cut_ic_pow":
                self.set("cuts.cut_ic_pow", self.cut_ic_pow(value))
            elif key == "sampling_mode" and "diffusion_sampling_mode" not in r:
                continue  # before 5.1 this name may have meant the sampler: handle_sampler decides
            elif key in MOTION_FIELDS:
                self.set(f"animation.{key}", self.motion_value(key, value))
            else:
                self.set(REPORT_KEY_MAP[key], value)  # type: ignore[arg-type]
        self.check_diffusion_steps()

    def missing_key(self, key: str) -> None:
        if key == "diffusion_steps":
            return  # derived; nothing to assume
        if key == "diffusion_sampling_mode" or (key == "sampling_mode" and "diffusion_sampling_mode" not in self.report):
            return  # handle_sampler explains these
        target = REPORT_KEY_MAP[key]
        dotted = "diffusion.width_height" if key in ("width", "height") else re.sub(r"\[\d\]$", "", target or "")
        self.assume(dotted)
        if key == "video_init_seed_continuity" and _is_pre51(self.version):
            return  # version_specific_notes sets and explains it
        if key == "seed":
            self.set("run.set_seed", "random_seed")
            self.warn("no 'seed' in the report: set_seed = 'random_seed' (a seed is drawn at render time)")
        elif key in ("width", "height"):
            self.set("diffusion.width_height", list(self.get("diffusion.width_height") or _default("diffusion", "width_height")))
            self.warn(f"report key {key!r} missing: using DD's default width_height")
        else:
            section, name = dotted.split(".", 1)
            default = _default(section, name)
            self.set(dotted, default)
            self.warn(f"report key {key!r} missing: using DD's default {name} = {default!r}")

    def coerce(self, key: str, value: Any) -> Any:
        """Make JSON values fit the spec's strict types where the meaning is unambiguous."""
        if key in _INT_KEYS:
            if isinstance(value, float) and value.is_integer():
                return int(value)  # a Colab "number" field typed as 4.0
            if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
                self.warn(f"{key}: the string {value!r} read as the integer {int(value)}")
                return int(value)
        elif key in _FLOAT_KEYS and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return value  # validation names the key
            self.warn(f"{key}: the string {value!r} read as the number {number!r}")
            return number
        elif key in _BOOL_KEYS and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            self.warn(f"{key}: the string {value!r} read as a boolean")
            return value.strip().lower() == "true"
        return value

    def prompt_schedule(self, key: str, value: Any) -> Any:
        """Keys "0", "100" -> ints (DD needs ints, §3.2) -> written back as canonical strings; prompts verbatim."""
        if isinstance(value, list):
            return {"0": value}  # pre-animation reports held one list
        if not isinstance(value, dict):
            raise self.fail(key, f"must be an object {{frame: [prompts]}} (got {type(value).__name__})")
        out: dict[str, Any] = {}
        for raw_key, prompts in value.items():
            text = str(raw_key).strip()
            if not re.fullmatch(r"\d+", text):
                raise self.fail(key, f"frame key {raw_key!r} is not a non-negative integer")
            frame = str(int(text))
            if frame in out:
                raise self.fail(key, f"frame {frame} appears twice (keys {raw_key!r} and another)")
            if isinstance(prompts, str):
                raise self.fail(key, f"frame {frame}: prompts must be a list of strings, not one string")
            out[frame] = prompts
        return dict(sorted(out.items(), key=lambda kv: int(kv[0])))

    def interp_spline(self, value: Any) -> str:
        if value != "Linear":
            self.warn(f"interp_spline = {value!r} not supported: the spec interpolates key frames linearly "
                      "(DD's default and the only value its form offered); motion between key frames may differ")
        return "Linear"

    def cut_ic_pow(self, value: Any) -> Any:
        """A number in 5.2; a string (a number or a 1000-unit schedule) from 5.5 (§9)."""
        if not isinstance(value, str):
            return value
        try:
            return float(value)
        except ValueError:
            pass
        try:
            values = schedules.parse_cut_schedule(value)
        except schedules.ScheduleError as exc:
            raise self.fail("cut_ic_pow", f"not a number or a cut schedule: {exc}")
        if len(set(values)) == 1:
            self.warn(f"cut_ic_pow schedule {value!r} (5.5+) is constant: using {values[0]!r}")
        else:
            self.warn(f"cut_ic_pow schedule {value!r} (5.5+) varies over the run; the spec takes one number: "
                      f"using its first value {values[0]!r} (inner-cut sizes will differ later in the run)")
        return values[0]

    def motion_value(self, key: str, value: Any) -> Any:
        """Key-frame strings kept; plain numbers (key_frames = False) kept as numbers."""
        if isinstance(value, bool):
            raise self.fail(key, "must be a key-frame string or a number (got a boolean)")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and self.report.get("key_frames") is False:
            try:
                return float(value)  # what DD does with key_frames = False
            except ValueError:
                pass
            # DD would fail on float() here (quirk Q4). A string with one value means that number; a
            # varying one has no plain-number equivalent.
            keys = _kf(value)
            if keys and len(set(keys.values())) == 1:
                number = next(iter(keys.values()))
                self.warn(f"{key}: key_frames is false, so the key-frame string {value!r} is read as the number {number!r}")
                return number
            raise self.fail(key, f"key_frames is false, so DD converts {value!r} with float(), which fails "
                                 "(DD 5.2 crashes here, quirk Q4); set key_frames to true in the report")
        return value

    def check_diffusion_steps(self) -> None:
        steps = self.get("diffusion.steps")
        reported = self.report.get("diffusion_steps")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1 or reported is None:
            return
        derived = (1000 // steps) * steps if steps < 1000 else steps  # §2.18
        if reported != derived:
            self.warn(f"diffusion_steps = {reported!r} in the report, but steps = {steps} gives {derived} "
                      "(DD recomputes it from steps); the spec derives it from steps")

    def handle_sampler(self) -> None:
        """diffusion_sampling_mode (5.1+), or the pre-5.1 `sampling_mode` name collision (§4.3)."""
        r = self.report
        if "diffusion_sampling_mode" in r:
            return  # 5.1+: both keys map by name (a missing one was filled by missing_key)
        self.assume("diffusion.diffusion_sampling_mode")
        mode = r.get("sampling_mode")
        if mode is None:
            self.set("diffusion.diffusion_sampling_mode", "ddim")
            self.set("camera_3d.sampling_mode", _default("camera_3d", "sampling_mode"))
            self.assume("camera_3d.sampling_mode")
            self.warn("no diffusion_sampling_mode and no sampling_mode: a build with no sampler choice, which "
                      "sampled with DDIM; diffusion_sampling_mode = 'ddim'")
        elif mode in ("ddim", "plms"):
            # The key still held the sampler choice (nothing overwrote it with a 3D resampling value).
            self.set("diffusion.diffusion_sampling_mode", mode)
            self.set("camera_3d.sampling_mode", _default("camera_3d", "sampling_mode"))
            self.assume("camera_3d.sampling_mode")
            self.warn(f"pre-5.1 report: sampling_mode = {mode!r} is the sampler (the name meant the sampler "
                      f"before 5.1): diffusion_sampling_mode = {mode!r}; the 3D resampling mode is not recorded")
        elif mode in _3D_RESAMPLING:
            # March-2022 builds: the sampler and the 3D resampling shared this name; run in cell order the
            # 3D value overwrote the sampler choice, and anything but 'ddim' selected PLMS.
            self.set("diffusion.diffusion_sampling_mode", "plms")
            self.set("camera_3d.sampling_mode", mode)
            self.warn(f"pre-5.1 report with sampling_mode = {mode!r} and no diffusion_sampling_mode: in the "
                      "March-2022 builds the 3D resampling value overwrote the sampler setting of the same "
                      "name, and any value other than 'ddim' ran PLMS, so diffusion_sampling_mode = 'plms'. "
                      "If the run came from v5.0 (Feb 2022), which always sampled with DDIM, set "
                      "diffusion_sampling_mode = 'ddim': both builds record the 3D value under this name, so "
                      "the report alone cannot tell them apart")
        else:
            raise self.fail("sampling_mode", f"{mode!r} is neither a sampler ('ddim', 'plms') nor a 3D "
                                             f"resampling mode ({', '.join(_3D_RESAMPLING)})")

    def handle_rotations(self) -> None:
        """Before 5.1, rotation_3d_* were radians per frame; the spec (like 5.1+) takes degrees."""
        if not _is_pre51(self.version):
            return
        converted = []
        for key in ("rotation_3d_x", "rotation_3d_y", "rotation_3d_z"):
            value = self.get(f"animation.{key}")
            if key not in self.report or value is None:
                continue
            try:
                new, nonzero = _radians_to_degrees(value)
            except schedules.ScheduleError as exc:
                raise self.fail(key, f"not a key-frame string: {exc}")
            if nonzero:  # all-zero strings stay as written: 0 rad == 0 deg
                self.set(f"animation.{key}", new)
                converted.append(f"{key} {value!r} -> {new!r}")
        if converted:
            self.warn("pre-5.1 report: 3D rotations were radians per frame; converted to degrees: "
                      + "; ".join(converted))
        else:
            self.warn("pre-5.1 report: 3D rotations were radians per frame (all zero here, nothing to convert)")

    def handle_later_keys(self) -> None:
        """Keys from other DD versions: convert what has an equivalent, name the rest in a warning."""
        r = self.report
        known = set(REPORT_KEYS_52)
        off = [key for key in LATER_CLIP_MODELS if key in r and self.later_clip(key, r[key]) is False]
        if off:
            self.warn("CLIP models added after 5.2 are off in the report, nothing to map: " + ", ".join(off))
        self.symmetry_keys()
        if "turbo_frame_blend" in r:
            self.warn(f"turbo_frame_blend = {r['turbo_frame_blend']!r} (early 5.1) ignored: 5.2 always blends "
                      "turbo frames (§7.5)")
        if "turbo_blend" in r:
            self.warn(f"turbo_blend = {r['turbo_blend']!r} ignored: a deprecated setting DD 5.2 does not have")
        for key in LDSR_KEYS:
            if key in r:
                self.warn(_ldsr_note(key, r[key]))
        handled = known | set(LATER_CLIP_MODELS) | set(V53_KEYS) | set(V54_KEYS) | {
            "turbo_frame_blend", "turbo_blend", *LDSR_KEYS}
        unknown = [k for k in r if k not in handled]
        if unknown:
            self.warn("report keys not known to DD 5.0-5.7, ignored: " + ", ".join(unknown))

    def later_clip(self, key: str, value: Any) -> bool:
        """A 5.3/5.5 CLIP checkbox: when on, the same open_clip model as an extra model. Returns the value."""
        value = self.coerce("ViTB32", value)  # same bool rules as DD's own checkboxes
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false (got {value!r})")
        if value:
            arch, pretrained = LATER_CLIP_MODELS[key]
            since = "5.3" if key == "ViTL14_336px" else "5.5"
            self.extra_clip.append({"arch": arch, "pretrained": pretrained})
            self.warn(f"{key} = true ({since}+) mapped to models.extra_clip_models "
                      f"{{arch = {arch!r}, pretrained = {pretrained!r}}} (loaded after DD's eight models; the "
                      "order only affects float summation)")
        return value

    def symmetry_keys(self) -> None:
        r = self.report
        on = [k for k in ("use_horizontal_symmetry", "use_vertical_symmetry") if k in r and r[k]]
        off = [k for k in ("use_horizontal_symmetry", "use_vertical_symmetry") if k in r and not r[k]]
        if on:
            self.warn(f"{', '.join(on)} = true (5.3+) not supported: the spec has no symmetry; the render will "
                      f"differ from DD's (transformation_percent = {r.get('transformation_percent')!r} unused)")
        if off:
            self.warn(f"{', '.join(off)} = false (5.3+): symmetry off, nothing to map")
        if "transformation_percent" in r and not on:
            self.warn(f"transformation_percent = {r['transformation_percent']!r} (5.3+) ignored: only used with "
                      "symmetry, which is off")

    def choose_animation_mode(self, given: str | None) -> None:
        """The report never records animation_mode (§4.3): a parameter, else a documented guess."""
        if given is not None:
            if given not in ANIMATION_MODES:
                raise SpecError(f"animation_mode: {given!r} is not one of {', '.join(ANIMATION_MODES)}",
                                [("animation_mode", f"must be one of {', '.join(ANIMATION_MODES)} (got {given!r})")])
            self.set("animation.animation_mode", given)
            self.mode_from_user = True
            self.warn(f"animation_mode = {given!r} given by the caller (DD reports do not record it)")
            return
        self.assume("animation.animation_mode")
        mode, why = self.guess_animation_mode()
        self.set("animation.animation_mode", mode)
        self.warn(f"animation_mode not in the report: guessed {mode!r} ({why}); pass animation_mode to override")

    def guess_animation_mode(self) -> tuple[str, str]:
        if self.get("turbo.turbo_mode") is True:
            # DD switches turbo off (before writing the report) unless the mode is 3D (§2.7).
            return "3D", "turbo_mode is true, and DD turns turbo off in every mode but 3D"
        frames, _ = self.siblings()
        if not frames:
            hint = self.motion_hint()
            return "None", "no animation frames next to the report" + (f"; note {hint}" if hint else "")
        reason = self.looks_3d()
        if reason:
            return "3D", f"{len(frames)} animation frame(s) next to the report and {reason}"
        return "2D", (f"{len(frames)} animation frame(s) next to the report and no 3D-only motion; "
                      "a Video Input run looks the same")

    def siblings(self) -> tuple[list[int], list[int]]:
        """Image numbers next to the report: zero-padded 4-digit animation frames and unpadded still indices."""
        if self.batch_num is None:
            return [], []
        stem = f"{self.batch_name}({self.batch_num})_" if self.separator == "()" else f"{self.batch_name}-{self.batch_num}_"
        pattern = re.compile(re.escape(stem) + r"(\d+)\.png$")
        try:
            names = [p.name for p in self.path.parent.iterdir()]
        except OSError:
            return [], []
        digits = [m.group(1) for n in names if (m := pattern.match(n))]
        # Frames are written as {frame:04} (so '0000'..'0999' are padded); stills as {i} (never padded).
        padded = [d for d in digits if len(d) >= 4 and d.startswith("0")]
        if padded:
            return sorted(int(d) for d in digits if len(d) >= 4), []
        return [], sorted(int(d) for d in digits)

    def looks_3d(self) -> str | None:
        """3D-only motion set: a rotation_3d key frame, or translation_z changed while angle/zoom are DD's defaults."""
        for key in ("rotation_3d_x", "rotation_3d_y", "rotation_3d_z"):
            values = _kf(self.get(f"animation.{key}"))
            if values and any(v != 0 for v in values.values()):
                return f"{key} is non-zero (3D only)"
        tz = _kf(self.get("animation.translation_z"))
        angle, zoom = _kf(self.get("animation.angle")), _kf(self.get("animation.zoom"))
        default_2d = angle is not None and not any(angle.values()) and zoom == {0: 1.0, 10: 1.05}
        if tz is not None and tz != {0: 10.0} and default_2d:
            return "translation_z differs from DD's default while the 2D-only angle/zoom do not"
        return None

    def motion_hint(self) -> str | None:
        changed = [k for k in MOTION_FIELDS if _kf(self.get(f"animation.{k}")) not in (None, _kf(_default("animation", k)))]
        if changed:
            return f"motion settings differ from DD's defaults ({', '.join(changed)}): was it an animation?"
        return None

    def choose_n_batches(self) -> None:
        self.assume("run.n_batches")
        mode = self.get("animation.animation_mode")
        if mode != "None":
            self.set("run.n_batches", 1)  # DD forces 1 in animation modes
            return
        _, stills = self.siblings()
        if stills:
            n = max(stills) + 1
            gaps = "" if len(stills) == n else f" ({n - len(stills)} missing in between)"
            self.set("run.n_batches", n)
            self.warn(f"n_batches = {n} from the still images _0 .. _{n - 1} next to the report{gaps}; "
                      "DD's n_batches may have been larger if the run was stopped")
        else:
            self.set("run.n_batches", _default("run", "n_batches"))
            self.warn(f"n_batches not in the report and no still images next to it: DD's default "
                      f"{_default('run', 'n_batches')}")

    def fill_not_in_report(self) -> None:
        for dotted in NOT_IN_REPORT:
            if self.get(dotted) is None:
                section, name = dotted.split(".", 1)
                self.set(dotted, _default(section, name))
            if dotted != "animation.animation_mode" or not self.mode_from_user:
                self.assume(dotted)
        if self.extra_clip:
            self.set("models.extra_clip_models", self.extra_clip)

    def version_specific_notes(self) -> None:
        r, mode = self.report, self.get("animation.animation_mode")
        if _is_pre51(self.version) and "video_init_seed_continuity" not in r:
            # 5.1 added the option "to make init video animations more continuous": before it the seed
            # changed every frame, which is what continuity = false does.
            self.set("video_input.video_init_seed_continuity", False)
            self.assume("video_input.video_init_seed_continuity")
            self.warn("pre-5.1 report: video_init_seed_continuity did not exist (the seed changed every frame); "
                      "set to false")
        self.video_overrides(mode)
        if mode != "None" and _is_pre53(self.version):
            fs, ins = self.get("animation.frames_scale"), self.get("init.init_scale")
            if fs is not None and fs != ins:
                self.warn(f"DD builds before 2022-05-26 (fix PR #86) used init_scale ({ins!r}) instead of "
                          f"frames_scale ({fs!r}) for animation frames; the spec uses frames_scale as fixed DD does")
        model = self.get("models.diffusion_model")
        if isinstance(model, str) and model not in DD52_DIFFUSION_MODELS:
            self.warn(f"diffusion_model {model!r} is not one of DD 5.2's models; disco-spec's registry may not "
                      "have it: give a custom checkpoint {path, sha256, config} instead")
        init = self.get("init.init_image")
        if isinstance(init, str) and init.strip() not in ("", "none", "None", "NONE"):
            self.warn(f"init_image {init!r} is a path on the machine that ran DD: make sure it exists here "
                      "(relative paths resolve against the spec's folder)")
        if mode == "Video Input":
            self.warn(f"video_init_path {self.get('video_input.video_init_path')!r} is a path on the machine "
                      "that ran DD: point it at your copy of the video")
        if r.get("key_frames") is False:
            self.warn("key_frames = false: DD 5.2 crashes with it unless an earlier run left its key-frame "
                      "series behind (quirk Q4), so the motion DD rendered may not be the numbers in the report")

    def video_overrides(self, mode: str) -> None:
        """5.4+ Video Input renders with video_init_* instead of the main settings (§9)."""
        r = self.report
        present = [k for k in V54_KEYS if k in r]
        if not present:
            return
        overrides = [k for k in present if k in V54_VIDEO_OVERRIDES]
        flow = [k for k in present if k not in V54_VIDEO_OVERRIDES]
        if mode == "Video Input":
            for key in overrides:
                target = V54_VIDEO_OVERRIDES[key]
                self.set(f"{_SECTION_OF[target]}.{target}", self.coerce(target, r[key]))
            if overrides:
                self.warn("5.4+ Video Input renders with the video_init_* settings: mapped "
                          + ", ".join(f"{k} -> {V54_VIDEO_OVERRIDES[k]}" for k in overrides))
        elif overrides:
            self.warn("5.4+ video_init_* settings ignored (used only in Video Input mode): " + ", ".join(overrides))
        if flow:
            detail = ("; video_init_flow_warp is on, so a Video Input render will differ from DD's"
                      if r.get("video_init_flow_warp") is True else "")
            self.warn("5.4+ optical-flow warp settings not supported, ignored: " + ", ".join(flow) + detail)

    # -- result ------------------------------------------------------------------------------------

    def result(self) -> ImportResult:
        document = self.document()
        self.validate(document)  # the document itself is returned: sparse and in the spec's order
        return ImportResult(document=document, detected_version=self.version,
                            assumed=list(self.assumed), warnings=list(self.warnings))

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "description": f"Imported from the Disco Diffusion settings report {self.path.name}",
        }
        provenance: dict[str, Any] = {"source": self.path.name}
        if self.batch_num is not None:
            provenance["batch_num"] = self.batch_num
        provenance.update(dd_version=self.version, assumed=list(self.assumed), warnings=list(self.warnings))
        doc["imported_from"] = provenance
        for section, cls in _section_classes():
            fields = {name: self.values[(section, name)] for name in cls.model_fields if (section, name) in self.values}
            if fields:
                doc[section] = fields
        return doc

    def validate(self, document: dict[str, Any]) -> JobSpec:
        try:
            return validate_document(document)
        except SpecError as exc:
            problems = [(self.report_key_for(loc), f"{msg} (spec field {loc})") for loc, msg in exc.problems]
            text = "; ".join(f"{key}: {msg}" for key, msg in problems)
            raise SpecError(f"{self.path.name}: values not valid for the spec: {text}", problems) from None

    def report_key_for(self, loc: str) -> str:
        """Which report key a spec path came from (longest matching prefix), for error messages."""
        back = {path: key for key, path in REPORT_KEY_MAP.items() if path}
        back.update({
            "diffusion.width_height": "width/height", "prompts": "text_prompts/image_prompts",
            "models": "ViTB32/ViTB16/ViTL14/RN101/RN50/RN50x4/RN50x16/RN50x64",
            "camera_3d": "near_plane/far_plane", "animation": "key_frames", "run.batch_name": "(file name)",
        })
        for path in sorted(back, key=len, reverse=True):
            if loc == path or loc.startswith(path + ".") or loc.startswith(path + "["):
                return back[path]
        return loc


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _section_classes() -> list[tuple[str, type]]:
    """(section name, model class) for JobSpec's sections, in the spec's order."""
    out = []
    for name, info in JobSpec.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            out.append((name, ann))
    return out


def _top_level_order() -> list[str]:
    return [info.alias or name for name, info in JobSpec.model_fields.items()]


def _default(section: str, name: str) -> Any:
    cls = dict(_section_classes())[section]
    return cls.model_fields[name].get_default(call_default_factory=True)


def _kf(value: Any) -> dict[int, float] | None:
    """Key frames of a motion value for the heuristics; None when it does not parse (validation reports it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return {0: float(value)}
    try:
        return schedules.parse_keyframes(value) if isinstance(value, str) else None
    except schedules.ScheduleError:
        return None


def _radians_to_degrees(value: Any) -> tuple[Any, bool]:
    """Rewrite a rotation (key-frame string or number) from radians to degrees; (new value, any non-zero)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.degrees(value), value != 0
    keys = schedules.parse_keyframes(value)
    # repr() round-trips exactly, so the series the spec computes equals degrees(report value) per key.
    text = ", ".join(f"{frame}: ({math.degrees(v)!r})" for frame, v in keys.items())
    return text, any(v != 0 for v in keys.values())


def _version_note(version: str) -> str:
    notes = {
        "5.1-5.2": "5.1 (from April 2022) and 5.2 write the same 66 keys",
        "5.0": "no diffusion_sampling_mode: written before 5.1 (v5.0 or a March-2022 build)",
        "<=5.0 (no 3D settings)": "no diffusion_sampling_mode and no 3D settings: written before 5.0's 3D mode",
        "5.1 (early, turbo_frame_blend)": "turbo_frame_blend: the first 5.1 build (2022-03-30)",
        "5.1 (early, sharpen_preset)": "LDSR keys with diffusion_sampling_mode: 5.1 before 2022-04-04",
        ">=5.3": "symmetry / ViT-L/14@336px keys",
        ">=5.4": "video_init_* warp keys",
        ">=5.5": "OpenCLIP keys or a string cut_ic_pow",
    }
    return f"report written by DD {version} ({notes.get(version, 'fingerprints of §4.3')})"


def _ldsr_note(key: str, value: Any) -> str:
    if key == "sharpen_preset" and value not in ("Off", None, False):
        return (f"sharpen_preset = {value!r} (LDSR super-resolution, 5.1 and earlier) ignored: DD's stills were "
                "sharpened after sampling; the spec renders the unsharpened image")
    return f"{key} = {value!r} (LDSR sharpening, 5.1 and earlier) ignored: removed before 5.2"


def _drop_none(value: Any) -> Any:
    """TOML has no null: drop None entries (the spec's default for every optional field is None)."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value

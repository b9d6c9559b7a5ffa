"""Import a Disco Diffusion settings report (`{batch_name}({batchNum})_settings.txt`) as a job spec.

DD writes the report (JSON) next to its images (disco.py:1430 (save_settings)). It holds 66 notebook settings in
5.2, named exactly like the spec's fields, so most keys map one to one onto a spec section. What the
report lacks (animation mode, n_batches, display rate, saves, VR, video cell, ...) is filled from
DD's defaults or a documented heuristic, and every such spec path is listed in `assumed`. Keys from
other DD versions are recognised by their fingerprints (spec/dd_versions.py): some are converted (pre-5.1
radians, 5.5 OpenCLIP models, 5.4 Video Input overrides), the rest are named in a warning. No report
key is dropped silently.

Standard library + pydantic + tomli-w only (no torch), like the rest of `disco_spec.spec`.

This module is the importer, whole: the entry point, the state its steps share (`_ImportState`), the
value mapping and conversions (`_ValueMapping`), the animation_mode / n_batches guesses
(`_ModeHeuristics`), the driver that runs the steps in order and assembles and validates the document
(`_Importer`), and the readable TOML of the result (:func:`report_to_toml`). The tables it reads live
beside it: `dd_report_file` (reading the file and its name), `dd_versions` (version fingerprints) and
`dd_key_map` (the 5.2 key tables and defaults); their public names are re-exported here.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import SpecError
from . import schedules
from .dd_key_map import (BOOL_KEYS, DD52_DIFFUSION_MODELS, FLOAT_KEYS, INT_KEYS, NOT_IN_REPORT, REPORT_KEY_MAP,
                         REPORT_KEYS_52, SECTION_OF, dd_default, section_classes)
from .dd_report_file import parse_file_name, read_report
from .dd_versions import (
    LATER_CLIP_MODELS,
    LDSR_KEYS,
    OPENCLIP_KEYS,
    V53_KEYS,
    V54_KEYS,
    V54_VIDEO_OVERRIDES,
    VERSION_UNKNOWN,
    detect_version,
    is_pre51,
    is_pre53,
    ldsr_note,
    version_note,
)
from .keyframe_splines import INTERP_SPLINES
from .load import validate_document
from .models import MOTION_FIELDS, SCHEMA_VERSION, JobSpec

__all__ = ["ImportResult", "import_dd_report", "report_to_toml", "REPORT_KEYS_52", "REPORT_KEY_MAP", "detect_version"]
# Also importable from here (tables the tests and callers read):
__all__ += ["ANIMATION_MODES", "DD52_DIFFUSION_MODELS", "NOT_IN_REPORT", "LATER_CLIP_MODELS", "LDSR_KEYS",
            "OPENCLIP_KEYS", "V53_KEYS", "V54_KEYS", "V54_VIDEO_OVERRIDES"]


DD_VERSIONS = ("5.0", "5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7")


def import_dd_report(path: str | Path, *, animation_mode: str | None = None, batch_name: str | None = None,
                     dd_version: str | None = None) -> ImportResult:
    """Read a DD-family settings file and return a validated spec document with its provenance.

    A SpecError raised here carries the warnings gathered so far in its `warnings` attribute, so a
    caller can show them with the error."""
    path = Path(path)
    warnings: list[str] = []
    try:
        report, family = read_report(path, warnings)
        in_file = report.get("batch_name")  # the file name gives the batch only when nothing else does
        name_used = batch_name is None and not (isinstance(in_file, str) and in_file.strip())
        file_batch, batch_num, separator = parse_file_name(path, warnings, name_used)
        version = _version(report, dd_version, warnings)
        name = _batch_name(batch_name, report.get("batch_name"), file_batch, warnings)
        imp = _Importer(path, report, name, batch_num, separator, version, warnings)
        imp.family = family
        imp.run(animation_mode)
        return imp.result()
    except SpecError as exc:
        exc.warnings = list(warnings)  # type: ignore[attr-defined]
        raise


def _version(report: dict[str, Any], given: str | None, warnings: list[str]) -> str:
    if given is None:
        return detect_version(report)
    if given not in DD_VERSIONS:
        raise SpecError(f"--dd-version: {given!r}", [("--dd-version", f"must be one of {', '.join(DD_VERSIONS)} "
                                                                       f"(got {given!r})")])
    found = detect_version(report)
    warnings.append(f"DD version {given} given by the caller (the file's keys say {found})")
    return "5.0" if given == "5.0" else ("5.1-5.2" if given in ("5.1", "5.2") else f">={given}")


_ILLEGAL_IN_NAME = re.compile(r"[/\\:\x00-\x1f\x7f]+")


def _batch_name(given: str | None, in_file: Any, from_file_name: str, warnings: list[str]) -> str:
    """--batch-name, else the file's own batch_name, else the file name's; an illegal one cleaned with a warning."""
    if given is not None:
        return given  # the user's own words: validation names any problem
    if isinstance(in_file, str) and in_file.strip():
        name, source = in_file, "the file's batch_name"
    else:
        name, source = from_file_name, "the file name"
    cleaned = _ILLEGAL_IN_NAME.sub("_", name).strip().strip(".").strip() or "TimeToDisco"
    if cleaned != name:
        warnings.append(f"batch_name {name!r} from {source} is not a legal folder name: cleaned to {cleaned!r} "
                        "(pass --batch-name to choose another)")
    return cleaned

# -- the state the importer's steps share, and what it returns ----------------------------------

@dataclass
class ImportResult:
    document: dict  # a spec document (plain dict) that validates with validate_document
    detected_version: str  # "5.1-5.2", "5.0", "5.1 (early, turbo_frame_blend)", ">=5.3", ">=5.4", ">=5.5", ...
    assumed: list[str] = field(default_factory=list)  # dotted spec paths whose values were NOT in the report
    warnings: list[str] = field(default_factory=list)  # unmapped keys, version notes, conversions, ...


class _ImportState:
    """The report being imported and what has been decided so far. `values` maps (section, field) -> value."""

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
        self.from_file: set[str] = set()  # spec paths the file's notebook variables set
        self.notebook_keys: list[str] = []  # the file's keys read as notebook variables

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

# -- mapping report values onto spec fields -----------------------------------------------------

_3D_RESAMPLING = ("bicubic", "bilinear", "nearest")


class _ValueMapping(_ImportState):
    """The importer's mapping steps: report keys to spec fields, with the conversions they need."""

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
                wh = list(self.get("diffusion.width_height") or dd_default("diffusion", "width_height"))
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
        if key == "video_init_seed_continuity" and is_pre51(self.version):
            return  # version_specific_notes sets and explains it
        if key == "seed":
            self.set("run.set_seed", "random_seed")
            self.warn("no 'seed' in the report: set_seed = 'random_seed' (a seed is drawn at render time)")
        elif key in ("width", "height"):
            self.set("diffusion.width_height", list(self.get("diffusion.width_height") or dd_default("diffusion", "width_height")))
            self.warn(f"report key {key!r} missing: using DD's default width_height")
        else:
            section, name = dotted.split(".", 1)
            default = dd_default(section, name)
            self.set(dotted, default)
            self.warn(f"report key {key!r} missing: using DD's default {name} = {default!r}")

    def coerce(self, key: str, value: Any) -> Any:
        """Make JSON values fit the spec's strict types where the meaning is unambiguous."""
        if key in INT_KEYS:
            if isinstance(value, float) and value.is_integer():
                return int(value)  # a Colab "number" field typed as 4.0
            if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
                self.warn(f"{key}: the string {value!r} read as the integer {int(value)}")
                return int(value)
        elif key in FLOAT_KEYS and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return value  # validation names the key
            self.warn(f"{key}: the string {value!r} read as the number {number!r}")
            return number
        elif key in BOOL_KEYS and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            self.warn(f"{key}: the string {value!r} read as a boolean")
            return value.strip().lower() == "true"
        return value

    def prompt_schedule(self, key: str, value: Any) -> Any:
        """Keys "0", "100" -> ints (DD needs ints: disco.py:2158 (split_prompts)) -> written back as canonical
        strings; prompts verbatim."""
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
        if value not in INTERP_SPLINES:
            self.warn(f"interp_spline = {value!r} is not one DD 5.2 computes ({', '.join(INTERP_SPLINES)}): "
                      "key frames are interpolated linearly (DD's default); motion between key frames may differ")
            return "Linear"
        return value

    def cut_ic_pow(self, value: Any) -> Any:
        """A number in 5.2; a string (a number or a 1000-unit schedule) from 5.5. A schedule that
        varies is kept whole: the spec indexes it per step as DD 5.7 does."""
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
            return values[0]
        return value

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
        derived = (1000 // steps) * steps if steps < 1000 else steps  # disco.py:1914 (BasicSettings cell)
        if reported != derived:
            self.warn(f"diffusion_steps = {reported!r} in the report, but steps = {steps} gives {derived} "
                      "(DD recomputes it from steps); the spec derives it from steps")

    def handle_sampler(self) -> None:
        """diffusion_sampling_mode (5.1+), or the pre-5.1 `sampling_mode` name collision."""
        r = self.report
        if "diffusion_sampling_mode" in r:
            return  # 5.1+: both keys map by name (a missing one was filled by missing_key)
        self.assume("diffusion.diffusion_sampling_mode")
        mode = r.get("sampling_mode")
        if mode is None:
            self.set("diffusion.diffusion_sampling_mode", "ddim")
            self.set("camera_3d.sampling_mode", dd_default("camera_3d", "sampling_mode"))
            self.assume("camera_3d.sampling_mode")
            self.warn("no diffusion_sampling_mode and no sampling_mode: a build with no sampler choice, which "
                      "sampled with DDIM; diffusion_sampling_mode = 'ddim'")
        elif mode in ("ddim", "plms"):
            # The key still held the sampler choice (nothing overwrote it with a 3D resampling value).
            self.set("diffusion.diffusion_sampling_mode", mode)
            self.set("camera_3d.sampling_mode", dd_default("camera_3d", "sampling_mode"))
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
        if not is_pre51(self.version):
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

# -- animation_mode and n_batches, which a report never records ---------------------------------

ANIMATION_MODES = ("None", "2D", "3D", "Video Input")


class _ModeHeuristics(_ImportState):
    """The importer's animation_mode and n_batches steps."""

    def choose_animation_mode(self, given: str | None) -> None:
        """The report never records animation_mode (Q18): a parameter, else a documented guess."""
        in_file = self.get("animation.animation_mode") if "animation.animation_mode" in self.from_file else None
        if in_file is not None and (given is None or given == in_file):
            self.mode_from_user = True
            return  # the file says it
        if given is not None:
            if in_file is not None:
                self.warn(f"animation_mode {given!r} given by the caller replaces the file's {in_file!r}")
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
            # DD switches turbo off (before writing the report) unless the mode is 3D
            # (disco.py:2009-2013 (AnimSettings cell)).
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
        changed = [k for k in MOTION_FIELDS if _kf(self.get(f"animation.{k}")) not in (None, _kf(dd_default("animation", k)))]
        if changed:
            return f"motion settings differ from DD's defaults ({', '.join(changed)}): was it an animation?"
        return None

    def choose_n_batches(self) -> None:
        if "run.n_batches" in self.from_file:
            return  # the file says it
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
            self.set("run.n_batches", dd_default("run", "n_batches"))
            self.warn(f"n_batches not in the report and no still images next to it: DD's default "
                      f"{dd_default('run', 'n_batches')}")

# -- the driver: the steps in order, other DD versions' keys, the document ----------------------

class _Importer(_ValueMapping, _ModeHeuristics):
    """Builds the spec document from one report (state and helpers in `_ImportState`)."""

    # -- steps ------------------------------------------------------------------------------------

    family = "Disco Diffusion"

    def run(self, animation_mode: str | None) -> None:
        if self.family != "Disco Diffusion":
            self.warn(f"a {self.family} settings file: read with DD's names ({self.family}'s own settings named below)")
        self.warn(version_note(self.version))
        self.drop_nulls()
        self.set("run.batch_name", self.batch_name)
        self.map_52_keys()
        self.map_notebook_keys()
        self.handle_sampler()
        self.handle_rotations()
        self.handle_later_keys()
        self.choose_animation_mode(animation_mode)
        self.choose_n_batches()
        self.fill_not_in_report()
        self.version_specific_notes()

    def handle_later_keys(self) -> None:
        """Keys from other DD versions: convert what has an equivalent, name the rest in a warning."""
        r = self.report
        known = set(REPORT_KEYS_52)
        off = [key for key in LATER_CLIP_MODELS if key in r and self.later_clip(key, r[key]) is False]
        if off:
            self.warn("CLIP models added after 5.2 are off in the report, nothing to map: " + ", ".join(off))
        # 5.3+ symmetry keys carry the spec's [symmetry] names: map_notebook_keys reads them as written
        if "turbo_frame_blend" in r:
            self.warn(f"turbo_frame_blend = {r['turbo_frame_blend']!r} (early 5.1) ignored: 5.2 always blends "
                      "turbo frames")
        if "turbo_blend" in r:
            self.warn(f"turbo_blend = {r['turbo_blend']!r} ignored: a deprecated setting DD 5.2 does not have")
        for key in LDSR_KEYS:
            if key in r:
                self.warn(ldsr_note(key, r[key]))
        handled = known | set(LATER_CLIP_MODELS) | set(V53_KEYS) | set(V54_KEYS) | set(self.notebook_keys) | {
            "turbo_frame_blend", "turbo_blend", *LDSR_KEYS, *_NOTEBOOK_ONLY, "extra_clip_models"}
        unknown = [k for k in r if k not in handled]
        if unknown:
            names = sorted(handled | set(_spec_field_sections()))
            parts = []
            for key in unknown:
                close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.75)
                parts.append(f"{key} (did you mean {close[0]!r}?)" if close else str(key))
            self.warn("keys not known to DD 5.0-5.7 or its notebook, ignored: " + ", ".join(parts))

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

    def fill_not_in_report(self) -> None:
        for dotted in NOT_IN_REPORT:
            if dotted in self.from_file:
                continue  # the file says it
            if self.get(dotted) is None:
                section, name = dotted.split(".", 1)
                self.set(dotted, dd_default(section, name))
            if dotted != "animation.animation_mode" or not self.mode_from_user:
                self.assume(dotted)
        if isinstance(self.report.get("extra_clip_models"), list):  # discoart's other CLIP models
            self.extra_clip = [*self.report["extra_clip_models"], *self.extra_clip]
        if self.extra_clip:
            self.set("models.extra_clip_models", self.extra_clip)

    def drop_nulls(self) -> None:
        """null (None) means "not set": the key is read as absent (DD never reads, e.g., a still's motion)."""
        fields = _spec_field_sections()
        # A null where DD's own default is None (init_image, ...) is that value; elsewhere it means "not set".
        nulls = [k for k, v in self.report.items() if v is None and not (
            k in fields and dd_default(fields[k], k) is None)]
        if nulls:
            self.report = {k: v for k, v in self.report.items() if v is not None}
            self.warn("null values read as not set: " + ", ".join(map(str, nulls)))

    def map_notebook_keys(self) -> None:
        """DD's notebook variables a settings file may carry besides the report's keys (same names as the spec's)."""
        r, fields = self.report, _spec_field_sections()
        if "width" not in r and "height" not in r:
            wh_key = next((k for k in _WIDTH_HEIGHT_KEYS(self.report) if k in r), None)
            if wh_key is not None:
                self.set("diffusion.width_height", r[wh_key])
                self.from_file.add("diffusion.width_height")
                self.assumed = [a for a in self.assumed if a != "diffusion.width_height"]
                self.warnings[:] = [w for w in self.warnings if not w.startswith(("report key 'width' missing",
                                                                                    "report key 'height' missing"))]
        elif "width_height" in r and list(r["width_height"] or []) != self.get("diffusion.width_height"):
            self.warn(f"width_height = {r['width_height']!r} and width/height = {self.get('diffusion.width_height')!r} "
                      "differ: width/height (what DD rendered) used")
        if "set_seed" in r and "seed" not in r:
            seed = r["set_seed"]
            if isinstance(seed, str) and seed.strip().isdigit():
                seed = int(seed)  # DD's set_seed field is a string: 'random_seed' or digits
            self.set("run.set_seed", seed)
            self.from_file.add("run.set_seed")
            self.assumed = [a for a in self.assumed if a != "run.set_seed"]
            self.warnings[:] = [w for w in self.warnings if not w.startswith("no 'seed' in the report")]
        for key, value in r.items():
            if key in REPORT_KEY_MAP or key in _NOTEBOOK_ONLY or key not in fields or key == "extra_clip_models":
                continue
            dotted = f"{fields[key]}.{key}"
            self.set(dotted, self.coerce(key, value))
            self.from_file.add(dotted)
            self.notebook_keys.append(key)
        mode = self.get("animation.animation_mode")
        if "animation.animation_mode" in self.from_file and mode not in ANIMATION_MODES:
            raise self.fail("animation_mode", f"must be one of {', '.join(ANIMATION_MODES)} (got {mode!r})")
        model = self.get("models.diffusion_model")
        if isinstance(model, str) and model.strip().lower() == "custom":
            path = r.get("custom_path")
            where = f" (the file's custom_path: {path!r})" if path else ""
            raise self.fail("diffusion_model", f"'custom' is DD's own checkpoint{where}: a spec needs the file pinned; "
                                               "give {path, sha256, config} as models.diffusion_model (config: the "
                                               "registry entry whose architecture it has)")

    def version_specific_notes(self) -> None:
        r, mode = self.report, self.get("animation.animation_mode")
        if is_pre51(self.version) and "video_init_seed_continuity" not in r:
            # 5.1 added the option "to make init video animations more continuous": before it the seed
            # changed every frame, which is what continuity = false does.
            self.set("video_input.video_init_seed_continuity", False)
            self.assume("video_input.video_init_seed_continuity")
            self.warn("pre-5.1 report: video_init_seed_continuity did not exist (the seed changed every frame); "
                      "set to false")
        self.refuse_flow_warp(mode)
        self.video_overrides(mode)
        if self.version == VERSION_UNKNOWN and any(
                _kf(self.get(f"animation.{k}")) not in (None, {0: 0.0}) for k in ("rotation_3d_x", "rotation_3d_y",
                                                                                  "rotation_3d_z")):
            self.warn("3D rotations read as degrees per frame (DD 5.1+): the DD version is unknown; if the file is "
                      "from DD 5.0, whose rotations were radians, import it with --dd-version 5.0")
        if mode != "None" and is_pre53(self.version):
            fs, ins = self.get("animation.frames_scale"), self.get("init.init_scale")
            if fs is not None and fs != ins:
                self.warn(f"DD builds before 2022-05-26 (fix PR #86) used init_scale ({ins!r}) instead of "
                          f"frames_scale ({fs!r}) for animation frames; the spec uses frames_scale as fixed DD does")
        model = self.get("models.diffusion_model")
        if isinstance(model, str) and model not in DD52_DIFFUSION_MODELS + DD57_DIFFUSION_MODELS:
            self.warn(f"diffusion_model {model!r} is not one DD 5.2-5.7 offers; `validate` checks it against "
                      "the registry (else give a custom checkpoint {path, sha256, config})")
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

    def refuse_flow_warp(self, mode: str) -> None:
        if mode == "Video Input" and self.report.get("video_init_flow_warp") is True:
            msg = ("= true (5.4+) in Video Input mode: disco-spec does not render DD's optical-flow warp, so the "
                   "frames would differ from DD's; set it to false in the file to import the rest")
            raise SpecError(f"{self.path.name}: video_init_flow_warp {msg}", [("video_init_flow_warp", msg)])

    def video_overrides(self, mode: str) -> None:
        """5.4+ Video Input renders with video_init_* instead of the main settings."""
        r = self.report
        present = [k for k in V54_KEYS if k in r]
        if not present:
            return
        overrides = [k for k in present if k in V54_VIDEO_OVERRIDES]
        flow = [k for k in present if k not in V54_VIDEO_OVERRIDES]
        if mode == "Video Input":
            for key in overrides:
                target = V54_VIDEO_OVERRIDES[key]
                self.set(f"{SECTION_OF[target]}.{target}", self.coerce(target, r[key]))
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
        for section, cls in section_classes():
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
        back.update({f"{_spec_field_sections()[key]}.{key}": key for key in self.notebook_keys})  # as the file names it
        for path in sorted(back, key=len, reverse=True):
            if loc == path or loc.startswith(path + ".") or loc.startswith(path + "["):
                return back[path]
        return loc


# DD's later diffusion models (5.4-5.7's diffusion_model choices, less 'custom').
DD57_DIFFUSION_MODELS = ("portrait_generator_v001", "pixelartdiffusion_expanded", "pixel_art_diffusion_hard_256",
                         "pixel_art_diffusion_soft_256", "pixelartdiffusion4k", "watercolordiffusion_2",
                         "watercolordiffusion", "PulpSciFiDiffusion")
# Notebook variables that are no spec field but are DD's own (read, used above, or meaningless for a spec).
_NOTEBOOK_ONLY = ("width_height", "width_height_for_512x512_models", "width_height_for_256x256_models", "seed",
                  "set_seed", "batch_name", "custom_path", "useCPU", "batchNum", "start_frame", "batch_size",
                  "side_x", "side_y", "cutn", "model_path", "diffusion_steps")
_256_MODELS = ("256x256_diffusion_uncond", "pixelartdiffusion_expanded", "pixel_art_diffusion_hard_256",
               "pixel_art_diffusion_soft_256", "pixelartdiffusion4k", "PulpSciFiDiffusion", "watercolordiffusion",
               "watercolordiffusion_2")


def _WIDTH_HEIGHT_KEYS(report: dict[str, Any]) -> tuple[str, ...]:
    """Which notebook size variable DD used: DD 5.7 picks the 256 one for its 256px models."""
    if report.get("diffusion_model") in _256_MODELS:
        return ("width_height", "width_height_for_256x256_models", "width_height_for_512x512_models")
    return ("width_height", "width_height_for_512x512_models", "width_height_for_256x256_models")


def _spec_field_sections() -> dict[str, str]:
    """Every spec field name -> its section (the spec's fields carry DD's names)."""
    out: dict[str, str] = {}
    for section, cls in section_classes():
        for name in cls.model_fields:
            out.setdefault(name, section)
    return out

# -- the result as readable TOML ----------------------------------------------------------------

def report_to_toml(result: ImportResult) -> str:
    """The imported spec as readable TOML: a header comment, then sections in the spec's order."""
    doc = result.document
    source = (doc.get("imported_from") or {}).get("source", "a DD settings report")
    # the guesses that change what is rendered most, named only when the file did not give them
    guessed = [k for k in ("animation.animation_mode", "run.n_batches") if k in result.assumed]
    check = f" Check {' and '.join(guessed)} in particular." if guessed else ""
    lines = [
        f"# Imported by `disco-spec import-dd` from {source} (DD version: {result.detected_version}).",
        f"# {len(result.assumed)} values are not in the report: DD defaults or guesses, listed in",
        f"# imported_from.assumed.{check}",
        f"# Read the {len(result.warnings)} notes in imported_from.warnings.",
    ]
    ordered = {k: doc[k] for k in _top_level_order() if k in doc}
    ordered.update({k: v for k, v in doc.items() if k not in ordered})
    return "\n".join(lines) + "\n\n" + tomli_w.dumps(_drop_none(ordered))


def _top_level_order() -> list[str]:
    return [info.alias or name for name, info in JobSpec.model_fields.items()]


def _drop_none(value: Any) -> Any:
    """TOML has no null: drop None entries (the spec's default for every optional field is None)."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value

"""Mapping a DD settings report's values onto spec fields, converting where the spec differs.

``_ValueMapping`` holds the importer's first steps: every 5.2 key to its spec field, DD's defaults
(with a warning) for missing keys, coercion of loosely typed JSON values, prompt-schedule keys,
``interp_spline``, a 5.5 ``cut_ic_pow`` schedule, key-frame strings versus numbers, the pre-5.1
``sampling_mode`` name collision and pre-5.1 rotations in radians. ``_kf`` reads a motion value's key
frames for these steps and the heuristics. No torch.
"""

from __future__ import annotations

import math
import re
from typing import Any

from . import schedules
from .dd_key_map import REPORT_KEY_MAP, REPORT_KEYS_52, _BOOL_KEYS, _FLOAT_KEYS, _INT_KEYS, _default
from .dd_state import _ImportState
from .dd_versions import _is_pre51
from .keyframe_splines import INTERP_SPLINES
from .models import MOTION_FIELDS

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

"""Guessing the two settings a DD report never records: animation_mode and n_batches (disco.py:1430 (save_settings)).

``_ModeHeuristics`` takes animation_mode from the caller, or guesses it from turbo_mode, the images
saved next to the report (zero-padded animation frames versus still indices) and whether 3D-only
motion is set; n_batches is 1 in animation modes, else counted from the still images, else DD's
default. Every guess is named in a warning and listed as assumed. No torch.
"""

from __future__ import annotations

import re

from ..errors import SpecError
from .dd_key_map import _default
from .dd_state import _ImportState
from .dd_values import _kf
from .models import MOTION_FIELDS

__all__ = ["ANIMATION_MODES"]

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
        changed = [k for k in MOTION_FIELDS if _kf(self.get(f"animation.{k}")) not in (None, _kf(_default("animation", k)))]
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
            self.set("run.n_batches", _default("run", "n_batches"))
            self.warn(f"n_batches not in the report and no still images next to it: DD's default "
                      f"{_default('run', 'n_batches')}")

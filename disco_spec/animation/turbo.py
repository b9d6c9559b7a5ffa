"""DD 5.2's 3D turbo mode (disco.py:1102-1127 (do_run), quirks Q7, Q8, Q21) as pure helpers.

DD keeps turbo's state in working-directory files; here it is an explicit value, `TurboState`:

* ``prev_frame`` — DD's ``prevFrame.png``: the image the next frame's "new" warp starts from (the pure
  diffused image of a diffused frame, or the new warp of a skipped frame — never a turbo blend);
* ``old_warp`` — DD's ``oldFrameScaled.png``: the "old" warp chain, started at the pre-roll frame P
  (``turbo_preroll``, 10 in DD) and warped once more on every frame after it.

Per frame f > 0 (n = ``turbo_steps``), `turbo_prepare` does what DD does before diffusion::

    new_warp = warp(prev_frame)                         # prevFrameScaled.png
    f == P          : old_warp = new_warp               # start the old chain
    f >  P, f%n ≠ 0 : SKIPPED — old_warp = warp(old_warp);
                      output = addWeighted(new_warp, b, old_warp, 1 − b), b = ((f mod n) + 1) / n;
                      prev_frame = new_warp; no diffusion
    f >  P, f%n = 0 : DIFFUSED — old_warp = new_warp    # DD also warps the old chain first and then
                                                        # overwrites it; that discarded warp is skipped here
    otherwise       : DIFFUSED, old chain unchanged

and `turbo_finish` what it does after diffusing with init = new_warp: ``prev_frame = diffused`` and the
saved output is ``addWeighted(diffused, 1/n, new_warp, 1 − 1/n)`` — for every diffused frame f > 0,
pre-roll frames included (Q21).  Frame 0 is diffused normally and saved unblended (`turbo_start`).

Blends are OpenCV ``addWeighted`` on 8-bit images, exactly as DD (per-channel arithmetic, so RGB and
DD's BGR give the same pixels).  ``warp`` is the caller's 3D warp for the frame being prepared: depth
estimation of its argument followed by `warp3d.warp_3d` with this frame's motion (a skipped frame costs
two such warps, as in DD).

Resuming (left to the frame loop): DD takes ``prev_frame`` from the saved output of the frame before
the resume point, and ``old_warp`` from whatever stale ``oldFrameScaled.png`` lies in its working folder
(or crashes without one).  Persist ``TurboState.old_warp`` to resume a turbo run faithfully;
`turbo_prepare` refuses a missing old chain where one is needed rather than invent it.  DD's resume
alignment check never fires (Q7), so a resume may start on a skipped frame; DD then saves the new
warp over the previous frame's *output* file (Q8), because its "previous frame" path is that file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

__all__ = [
    "TurboState",
    "TurboFrame",
    "turbo_blend",
    "turbo_output",
    "is_turbo_skipped",
    "skip_blend_factor",
    "turbo_start",
    "turbo_prepare",
    "turbo_finish",
]

Warp = Callable[[np.ndarray], np.ndarray]


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    for name, x in (("first image", a), ("second image", b)):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"{name} must be a uint8 RGB array [H, W, 3], got {x.dtype} {x.shape}")
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def turbo_blend(new_warp_u8: np.ndarray, old_warp_u8: np.ndarray, b: float) -> np.ndarray:
    """A skipped frame's output: ``cv2.addWeighted(new, b, old, 1 − b, 0)`` on 8-bit images (rounded, saturated)."""
    new, old = _check_pair(new_warp_u8, old_warp_u8)
    return cv2.addWeighted(new, float(b), old, 1 - float(b), 0.0)


def turbo_output(diffused_u8: np.ndarray, warp_u8: np.ndarray, n: int) -> np.ndarray:
    """A diffused frame's saved output in turbo mode: ``addWeighted(diffused, 1/n, warp, 1 − 1/n, 0)``."""
    n = int(n)
    if n < 1:
        raise ValueError(f"turbo_steps must be >= 1, got {n}")
    blend = 1 / n
    diffused, warp = _check_pair(diffused_u8, warp_u8)
    return cv2.addWeighted(diffused, blend, warp, 1 - blend, 0.0)


def is_turbo_skipped(frame: int, preroll: int, steps: int) -> bool:
    """Whether DD skips diffusion for this frame (frames 0…P are always diffused)."""
    return frame > 0 and frame > preroll and frame % int(steps) != 0


def skip_blend_factor(frame: int, steps: int) -> float:
    """Weight of the new warp in a skipped frame: ((f mod n) + 1) / n."""
    n = int(steps)
    return ((frame % n) + 1) / n


@dataclass(frozen=True)
class TurboState:
    """What turbo carries from one frame to the next (DD's prevFrame.png and oldFrameScaled.png)."""

    prev_frame: np.ndarray  # uint8 RGB: source of the next frame's new warp
    old_warp: np.ndarray | None  # uint8 RGB: the old warp chain; None until the pre-roll frame


@dataclass(frozen=True)
class TurboFrame:
    """One prepared frame: what to diffuse from, or (skipped) what to save."""

    frame: int
    diffuse: bool
    init: np.ndarray  # the new warp (prevFrameScaled.png): the init when diffused, the blend's "new" side
    output: np.ndarray | None  # skipped frames: the blended frame to save; None when diffused
    blend: float  # skipped: b (weight of the new warp); diffused: 1/n (weight of the diffused image)
    state: TurboState  # skipped: the state for the next frame; diffused: completed by turbo_finish


def turbo_start(frame0_u8: np.ndarray, *, preroll: int) -> TurboState:
    """State after frame 0 (diffused, saved unblended).  With ``preroll == 0`` the old chain starts at
    frame 0 itself (DD hard-codes P = 10 and has no such case; without it frame 1 would lack a chain)."""
    return TurboState(prev_frame=frame0_u8, old_warp=frame0_u8 if preroll == 0 else None)


def turbo_prepare(frame: int, state: TurboState, warp: Warp, *, preroll: int, steps: int) -> TurboFrame:
    """DD's turbo bookkeeping for frame f > 0 before diffusion (see the module docstring)."""
    if frame <= 0:
        raise ValueError("turbo_prepare is for frames >= 1; frame 0 is diffused normally (see turbo_start)")
    n = int(steps)
    new_warp = warp(state.prev_frame)
    if frame == preroll:
        return TurboFrame(frame, True, new_warp, None, 1 / n, TurboState(state.prev_frame, new_warp))
    if frame > preroll:
        if is_turbo_skipped(frame, preroll, n):
            if state.old_warp is None:
                raise ValueError(
                    f"turbo frame {frame} is skipped but the old warp chain is missing "
                    "(resuming? persist TurboState.old_warp; DD would read a stale oldFrameScaled.png)"
                )
            old_warp = warp(state.old_warp)
            b = skip_blend_factor(frame, n)
            out = turbo_blend(new_warp, old_warp, b)
            return TurboFrame(frame, False, new_warp, out, b, TurboState(new_warp, old_warp))
        return TurboFrame(frame, True, new_warp, None, 1 / n, TurboState(state.prev_frame, new_warp))
    return TurboFrame(frame, True, new_warp, None, 1 / n, state)


def turbo_finish(prepared: TurboFrame, diffused_u8: np.ndarray, *, steps: int) -> tuple[np.ndarray, TurboState]:
    """After diffusing a prepared frame: (saved output = 1/n diffused + (1 − 1/n) new warp, next state)."""
    if not prepared.diffuse:
        raise ValueError(f"frame {prepared.frame} is a turbo-skipped frame; it is not diffused")
    out = turbo_output(diffused_u8, prepared.init, steps)
    return out, TurboState(prev_frame=diffused_u8, old_warp=prepared.state.old_warp)

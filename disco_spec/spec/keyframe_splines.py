"""DD 5.2's ``interp_spline`` = "Quadratic" / "Cubic" key-frame interpolation
(disco.py:2141-2153 (get_inbetweens)).

DD's ``get_inbetweens`` builds the same pandas series as for "Linear" (see
:func:`disco_spec.spec.keyframes.keyframe_series`: keys >= max_frames appended as labels, frame 0 and
frame max_frames-1 set from the first/last valid entries), then calls
``Series.interpolate(method="quadratic"|"cubic", limit_direction="both")``. pandas hands those methods
to SciPy: ``interp1d(x, y, kind=...)`` over the known points, x being the index *labels* (so, unlike
"Linear", keys beyond the end shape the curve), which sorts x and fits an interpolating B-spline of
that degree (``make_interp_spline``, not-a-knot ends). This module does the same with SciPy's
``make_interp_spline`` directly; SciPy is imported only when a spline is asked for.

DD lowers the method when there are too few key frames: "Cubic" with <= 3 keys becomes "Quadratic",
"Quadratic" with <= 2 keys becomes "Linear" (counted over the parsed keys, before the end points are
filled in).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .keyframes import keyframe_series
from .schedule_error import ScheduleError, check_frame_key

__all__ = ["INTERP_SPLINES", "effective_interp_spline", "interpolated_series"]

INTERP_SPLINES = ("Linear", "Quadratic", "Cubic")
_DEGREE = {"Quadratic": 2, "Cubic": 3}


def effective_interp_spline(method: str, n_keys: int) -> str:
    """The method DD actually uses for ``n_keys`` key frames (Cubic → Quadratic → Linear)."""
    if method not in INTERP_SPLINES:
        raise ValueError(f"interp_spline must be one of {', '.join(INTERP_SPLINES)}, not {method!r}")
    if method == "Cubic" and n_keys <= 3:
        method = "Quadratic"
    if method == "Quadratic" and n_keys <= 2:
        method = "Linear"
    return method


def interpolated_series(keys: Mapping[int, float], max_frames: int, method: str = "Linear") -> list[float]:
    """Per-frame values for frames 0..max_frames-1 with DD's ``interp_spline`` ``method``."""
    method = effective_interp_spline(method, len(keys))
    linear = keyframe_series(keys, max_frames)  # validates, and gives the pandas series' end points
    if method == "Linear":
        return linear
    known: dict[int, float] = {}
    appended: list[tuple[int, float]] = []
    for key, raw in keys.items():
        frame = check_frame_key(key, "key-frame")
        if frame < max_frames:
            known[frame] = float(raw)
        else:
            appended.append((frame, float(raw)))
    known[0] = linear[0]
    known[max_frames - 1] = linear[max_frames - 1]
    missing = [f for f in range(max_frames) if f not in known]
    if not missing:  # pandas interpolates nothing when no value is missing
        return [known[f] for f in range(max_frames)]

    import numpy as np
    from scipy.interpolate import make_interp_spline

    points = sorted(known.items()) + appended  # pandas' positional order: the index, then appended labels
    x = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    order = np.argsort(x, kind="mergesort")  # interp1d sorts its x the same way
    spline = make_interp_spline(x[order], y[order], k=_DEGREE[method], check_finite=False)
    values = spline(np.array(missing, dtype=np.float64))
    out = dict(known)
    for f, v in zip(missing, values.tolist()):
        if not math.isfinite(v):
            raise ScheduleError(f"key-frame {method.lower()} interpolation gives a non-finite value at frame {f}")
        out[f] = v
    return [out[f] for f in range(max_frames)]

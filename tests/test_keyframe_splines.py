"""`interp_spline` = Linear / Quadratic / Cubic: the values DD 5.2's get_inbetweens computes with pandas."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd  # a dev dependency: the library DD itself interpolated with
import pytest

from disco_spec.plan.resolve import resolve_plan
from disco_spec.spec.keyframe_splines import effective_interp_spline, interpolated_series
from disco_spec.spec.load import validate_document
from disco_spec.spec.schedules import parse_keyframes


def dd_get_inbetweens(key_frames: dict[int, float], max_frames: int, interp_spline: str) -> list[float]:
    """DD 5.2's get_inbetweens (disco.py:2094 (get_inbetweens)), run on pandas."""
    key_frame_series = pd.Series([np.nan for _ in range(max_frames)])
    for i, value in key_frames.items():
        key_frame_series[i] = value
    key_frame_series = key_frame_series.astype(float)
    interp_method = interp_spline
    if interp_method == "Cubic" and len(key_frames.items()) <= 3:
        interp_method = "Quadratic"
    if interp_method == "Quadratic" and len(key_frames.items()) <= 2:
        interp_method = "Linear"
    key_frame_series[0] = key_frame_series[key_frame_series.first_valid_index()]
    key_frame_series[max_frames - 1] = key_frame_series[key_frame_series.last_valid_index()]
    key_frame_series = key_frame_series.interpolate(method=interp_method.lower(), limit_direction="both")
    return [float(key_frame_series[f]) for f in range(max_frames)]


def _random_keyframe_string(r: random.Random, max_frames: int) -> str:
    n = r.randint(1, 8)
    parts = []
    for _ in range(n):
        # mostly in range, sometimes beyond the end (pandas appends those labels), sometimes repeated
        frame = r.randint(0, max_frames - 1) if r.random() < 0.8 else r.randint(max_frames, 3 * max_frames)
        value = round(r.uniform(-20, 20), r.randint(0, 4))
        parts.append(f"{frame}: ({value})")
    return ", ".join(parts)


CASES = []
_r = random.Random(20220526)
for _ in range(400):
    _max = _r.choice([1, 2, 3, 5, 10, 24, 60, 200])
    CASES.append((_random_keyframe_string(_r, _max), _max))


@pytest.mark.parametrize("method", ["Linear", "Quadratic", "Cubic"])
def test_matches_pandas_on_random_keyframe_strings(method):
    for text, max_frames in CASES:
        keys = parse_keyframes(text)
        # bit for bit: the same SciPy spline pandas builds, evaluated at the same points
        assert interpolated_series(keys, max_frames, method) == dd_get_inbetweens(keys, max_frames, method), (text, max_frames)


def test_splines_differ_from_linear_where_they_should():
    keys = parse_keyframes("0: (0), 10: (10), 20: (0), 30: (5)")
    lin = interpolated_series(keys, 31, "Linear")
    quad = interpolated_series(keys, 31, "Quadratic")
    cub = interpolated_series(keys, 31, "Cubic")
    assert lin[5] == 5.0 and quad[5] != lin[5] and cub[5] != quad[5]
    for f in (0, 10, 20, 30):  # every method passes through the key frames
        assert lin[f] == quad[f] == cub[f] == keys[f]


def test_dd_lowers_the_method_when_there_are_few_keys():
    assert effective_interp_spline("Cubic", 3) == "Quadratic"
    assert effective_interp_spline("Cubic", 2) == "Linear"
    assert effective_interp_spline("Cubic", 4) == "Cubic"
    assert effective_interp_spline("Quadratic", 2) == "Linear"
    with pytest.raises(ValueError):
        effective_interp_spline("cubic", 5)


def test_the_plan_uses_the_spec_interp_spline():
    def plan_zoom(method):
        doc = {"schema_version": 1, "run": {"set_seed": 1},
               "animation": {"animation_mode": "2D", "max_frames": 12, "interp_spline": method,
                             "zoom": "0: (1), 4: (1.2), 8: (0.9), 11: (1.1)"}}
        return [it.motion["zoom"] for it in resolve_plan(validate_document(doc)).items]

    keys = parse_keyframes("0: (1), 4: (1.2), 8: (0.9), 11: (1.1)")
    for method in ("Linear", "Quadratic", "Cubic"):
        assert plan_zoom(method) == dd_get_inbetweens(keys, 12, method)
    assert plan_zoom("Cubic") != plan_zoom("Linear")

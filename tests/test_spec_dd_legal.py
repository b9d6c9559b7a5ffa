"""Values DD 5.2 accepts are accepted; the refusals that stay are the ones DD crashes on or that mean nothing."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from disco_spec.errors import SpecError
from disco_spec.plan.resolve import resolve_plan
from disco_spec.spec.load import validate_document

ROOT = Path(__file__).resolve().parent.parent
SMOKE = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())


def _doc(section: str, values: dict) -> dict:
    doc = copy.deepcopy(SMOKE)
    doc.setdefault(section, {}).update(values)
    return doc


DD_LEGAL = [
    ("camera_3d", {"midas_weight": 1.5}),  # >= 1: MiDaS alone
    ("guidance", {"tv_scale": -10.0}),
    ("guidance", {"range_scale": -150.0}),
    ("guidance", {"sat_scale": -5.0}),
    ("guidance", {"clamp_max": 0.0}),
    ("guidance", {"clamp_max": -0.05}),
    ("guidance", {"rand_mag": -0.05}),
    ("init", {"init_scale": -1000.0}),
    ("animation", {"frames_scale": -1500.0}),
    ("vr", {"vr_eye_angle": -2.0}),
    ("vr", {"vr_eye_angle": 60.0}),
    ("vr", {"vr_ipd": -5.0}),
    ("diffusion", {"eta": -0.5}),
    ("cuts", {"cutn_batches": 0}),
    ("cuts", {"cut_ic_pow": 0.0}),
    ("cuts", {"cut_icgray_p": "[-1]*400+[1.5]*600"}),
    ("turbo", {"turbo_steps": "1"}),
    ("turbo", {"turbo_steps": "12"}),
    ("turbo", {"turbo_steps": 9}),
    ("animation", {"interp_spline": "Cubic"}),
]


@pytest.mark.parametrize("section, values", DD_LEGAL, ids=[f"{s}.{next(iter(v))}={next(iter(v.values()))}" for s, v in DD_LEGAL])
def test_dd_legal_values_are_accepted_and_planned(section, values):
    spec = validate_document(_doc(section, values))
    assert getattr(getattr(spec, section), next(iter(values))) == next(iter(values.values()))
    resolve_plan(spec)


STILL_REFUSED = [  # each one is a line in docs/departures.md
    ("camera_3d", {"midas_weight": 0.0}),  # DD crashes (Q9)
    ("camera_3d", {"midas_weight": -0.5}),  # DD never loads MiDaS: crash
    ("cuts", {"cut_ic_pow": -1.0}),  # inner cut larger than the image: DD crashes
    ("cuts", {"cut_overview": "[2.5]*1000"}),  # range(2.5): DD crashes
    ("diffusion", {"steps": 1}),  # guided-diffusion cannot respace to one step
    ("run", {"display_rate": 0}),  # j % 0: DD crashes
    ("turbo", {"turbo_steps": "0"}),  # frame % 0: DD crashes
    ("camera_3d", {"fov": 0.0}),  # tan(0) in a denominator: NaN warp
    ("camera_3d", {"near_plane": 0.0}),  # 0/0 in the projection: NaN warp
    ("video_input", {"extract_nth_frame": 0}),  # mod(n, 0): ffmpeg fails
    ("symmetry", {"transformation_percent": [1.5]}),  # names no step: DD never mirrors
]


@pytest.mark.parametrize("section, values", STILL_REFUSED, ids=[f"{s}.{next(iter(v))}" for s, v in STILL_REFUSED])
def test_values_dd_crashes_on_are_refused_naming_the_field(section, values):
    with pytest.raises(SpecError) as exc:
        validate_document(_doc(section, values))
    assert next(iter(values)) in str(exc.value)


def test_every_remaining_refusal_is_listed_in_departures():
    text = (ROOT / "docs" / "departures.md").read_text()
    for section, values in STILL_REFUSED:
        assert f"`{next(iter(values))}`" in text, next(iter(values))

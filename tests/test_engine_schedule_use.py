"""Which cut counts each sampler step uses: independent recomputation of DD's 1000-unit indexing
(disco.py:1253-1262 (cond_fn))."""

from __future__ import annotations

import math

import pytest

from disco_spec.engine.guidance import GuidanceSettings, cuts_for_step
from disco_spec.engine.sampler import respaced_alphas_cumprod, t_model_for
from disco_spec.spec.schedules import parse_cut_schedule


def _settings(overview: str, inner: str, gray: str) -> GuidanceSettings:
    return GuidanceSettings(
        clip_guidance_scale=5000, tv_scale=0, range_scale=150, sat_scale=0, init_scale=0, cutn_batches=4,
        cut_overview=parse_cut_schedule(overview), cut_innercut=parse_cut_schedule(inner),
        cut_icgray_p=parse_cut_schedule(gray), cut_ic_pow=1.0, skip_augs=False, aug_mode="None",
        clamp_grad=True, clamp_max=0.05,
    )


@pytest.mark.parametrize("steps", [250, 100, 150, 50])
def test_default_schedule_switches_where_dd_switches(steps: int) -> None:
    s = _settings("[12]*400+[4]*600", "[4]*400+[12]*600", "[0.2]*400+[0]*600")
    _, timesteps, n = respaced_alphas_cumprod(steps)
    for k in range(steps):
        t = t_model_for(timesteps, n, k, 1, "cpu")
        # independent: original timestep tau_k scaled to 0..1000, idx = 1000 - (floor(t) + 1)
        idx = 1000 - (math.floor(timesteps[k] * 1000 / n) + 1)
        expected = (12, 4, 0.2) if idx < 400 else (4, 12, 0.0)
        assert cuts_for_step(s, t) == expected, (k, idx)


def test_steps_250_read_every_fourth_entry() -> None:
    ramp = "[" + ",".join(str(i) for i in range(1000)) + "]"
    s = _settings(ramp, "[1]*1000", "[0]*1000")
    _, timesteps, n = respaced_alphas_cumprod(250)
    used = [cuts_for_step(s, t_model_for(timesteps, n, k, 1, "cpu"))[0] for k in range(249, -1, -1)]
    assert used == [999 - 4 * k for k in range(249, -1, -1)]
    assert used[0] == 3 and used[-1] == 999

"""cut_ic_pow as a number (DD 5.2) or a 1000-unit schedule read per step (DD 5.7 ``disco.py`` cond_fn:
``IC_Size_Pow=args.cut_ic_pow[1000-t_int]``): the spec takes both, the plan carries the step values,
the guidance gradient draws each step's inner cuts with that step's exponent, and import-dd keeps it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from disco_spec.engine import guidance
from disco_spec.engine.guidance import ClipTargets, GuidanceSettings, guidance_gradient, ic_pow_for_step
from disco_spec.errors import SpecError
from disco_spec.models.types import ClipBundle
from disco_spec.plan.resolve import resolve_plan, with_concrete_seed
from disco_spec.spec.dd_import import import_dd_report
from disco_spec.spec.load import validate_document
from disco_spec.spec.schedules import parse_cut_schedule

SCHEDULE = "[2]*300+[7]*700"  # DD's order: the first 300 units are the first (noisiest) steps


def _spec(**cuts):
    return validate_document({"schema_version": 1, "cuts": cuts})


def test_spec_takes_a_number_a_schedule_string_and_segments():
    assert _spec(cut_ic_pow=2.5).cuts.cut_ic_pow == 2.5
    assert _spec(cut_ic_pow=SCHEDULE).cuts.cut_ic_pow == SCHEDULE
    segments = _spec(cut_ic_pow=[{"value": 2, "units": 300}, {"value": 7, "units": 700}]).cuts.cut_ic_pow
    assert [(s.value, s.units) for s in segments] == [(2, 300), (7, 700)]


@pytest.mark.parametrize("bad, says", [
    (-1, ">= 0"), ("[1]*300+[-1]*700", ">= 0"), ("[1]*999", "1000"), (True, "number"), ("1.5", "expected a list"),
])
def test_spec_refuses_bad_cut_ic_pow_naming_the_field(bad, says):
    with pytest.raises(SpecError) as ei:
        _spec(cut_ic_pow=bad)
    [(field, message)] = ei.value.problems
    assert field == "cuts.cut_ic_pow" and says in message


def _plan(spec):
    return resolve_plan(with_concrete_seed(spec, draw=7)[0])


def test_plan_keeps_a_number_as_a_number_and_a_schedule_as_its_1000_values():
    number = _plan(_spec(cut_ic_pow=1))
    assert number.cut_ic_pow == 1.0 and isinstance(number.cut_ic_pow, float)
    # a number's plan (and its hash) is the default spec's: DD 5.2 plans and goldens do not move
    assert number.sha256() == _plan(_spec()).sha256()
    scheduled = _plan(_spec(cut_ic_pow=SCHEDULE))
    assert scheduled.cut_ic_pow == [2.0] * 300 + [7.0] * 700
    assert scheduled.sha256() != number.sha256()


def _settings(ic_pow) -> GuidanceSettings:
    return GuidanceSettings(
        clip_guidance_scale=1000, tv_scale=0, range_scale=0, sat_scale=0, init_scale=0, cutn_batches=1,
        cut_overview=parse_cut_schedule("[1]*1000"), cut_innercut=parse_cut_schedule("[2]*1000"),
        cut_icgray_p=parse_cut_schedule("[0]*1000"), cut_ic_pow=ic_pow, skip_augs=True, aug_mode="None",
        clamp_grad=False, clamp_max=0.05,
    )


@pytest.mark.parametrize("t, expected", [(999.0, 2.0), (700.0, 2.0), (699.0, 7.0), (0.0, 7.0)])
def test_ic_pow_for_step_reads_the_cut_counts_index(t, expected):
    # DD: t_int = int(t) + 1; index 1000 - t_int. t = 700 -> index 299 (last 2), t = 699 -> index 300 (first 7)
    assert ic_pow_for_step(_settings(parse_cut_schedule(SCHEDULE)), torch.tensor([t])) == expected
    assert ic_pow_for_step(_settings(1.5), torch.tensor([t])) == 1.5


def test_guidance_gradient_cuts_each_step_with_its_own_exponent(monkeypatch):
    """The exponent the inner cuts of a step are drawn with is the schedule's value for that step."""
    used: list[float] = []

    def recording_cutouts(x, size, overview, inner, ic_pow, gray_p, generator, **kwargs):
        used.append(ic_pow)
        return x[:, :, :size, :size].repeat(overview + inner, 1, 1, 1)

    monkeypatch.setattr(guidance, "dango_cutouts", recording_cutouts)
    clip = ClipBundle(name="flat", input_resolution=4, encode_image=lambda x: x.flatten(1)[:, :8],
                      encode_text=lambda texts: torch.zeros(len(texts), 8))
    targets = [ClipTargets(clip=clip, embeds=torch.ones(1, 8), weights=torch.ones(1))]
    settings = _settings(parse_cut_schedule(SCHEDULE))
    x = torch.linspace(-1, 1, 3 * 8 * 8).reshape(1, 3, 8, 8)
    for t in (900.0, 100.0):
        guidance_gradient(x, 0, torch.tensor([t]), x0_fn=lambda x, k, t: x, alphas_cumprod=torch.full((4,), 0.5),
                          clips=targets, settings=settings, init=None, lpips_fn=None,
                          generator=torch.Generator().manual_seed(0))
    assert used == [2.0, 7.0]


def write_report(folder: Path, cut_ic_pow: str) -> Path:
    """DD 5.2's sample report with a 5.5+ string cut_ic_pow, written as DD writes it."""
    report = json.loads((Path(__file__).parent / "data" / "dd_reports" / "TimeToDisco(3)_settings.txt").read_text())
    path = folder / f"cut_ic_pow_{len(list(folder.iterdir()))}_settings.txt"
    path.write_text(json.dumps({**report, "cut_ic_pow": cut_ic_pow}, indent=4), encoding="utf-8")
    return path


def test_import_keeps_a_varying_schedule_whole_and_the_plan_uses_it(tmp_path: Path):
    result = import_dd_report(write_report(tmp_path, cut_ic_pow="[100]*900+[40]*100"))
    spec = validate_document(result.document)
    assert spec.cuts.cut_ic_pow == "[100]*900+[40]*100"
    assert not any("cut_ic_pow schedule" in w for w in result.warnings)  # no "using its first value"
    assert _plan(spec).cut_ic_pow == [100.0] * 900 + [40.0] * 100
    # a constant schedule is its number, said so
    constant = import_dd_report(write_report(tmp_path, cut_ic_pow="[0.75]*1000"))
    assert validate_document(constant.document).cuts.cut_ic_pow == 0.75
    assert any("constant" in w for w in constant.warnings)

"""The cutouts section of the job spec: cut schedules over DD's 1000 units, cut batches, augmentations
(disco.py:2351-2359 (ExtraSettings cell))."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, field_validator

from . import schedules
from .fields import Finite, Section


class CutSegment(Section):
    """Structured form of a cut schedule piece: `value` repeated for `units` of the 1000-unit schedule."""

    value: Finite
    units: int = Field(ge=1, le=1000)


CutSchedule = Union[str, list[CutSegment]]


class CutsSection(Section):
    """Cutout counts per 1000-unit schedule, cut batches, augmentations (DD 'Cutn scheduling')."""

    cutn_batches: int = Field(default=4, ge=0, le=64, description="Cut sets drawn per step; their gradients are "
                              "averaged (0 leaves out the CLIP loss: DD's loop then never runs).")
    skip_augs: bool = Field(default=False, description="Turn off the augmentations of CLIP cutouts.")
    cut_overview: CutSchedule = Field(
        default="[12]*400+[4]*600",
        description="Overview cuts per schedule unit: a list expression over exactly 1000 units, or [[value, units], ...].",
    )
    cut_innercut: CutSchedule = Field(default="[4]*400+[12]*600", description="Inner (zoomed-in) cuts per schedule unit.")
    cut_ic_pow: Union[Annotated[Finite, Field(ge=0)], CutSchedule] = Field(
        default=1, description="Exponent shaping inner-cut sizes (higher: smaller cuts; negative sizes crash DD): a "
        "number (DD 5.2) or, as DD 5.5+, a schedule over the 1000 units like cut_overview.")
    cut_icgray_p: CutSchedule = Field(default="[0.2]*400+[0]*600", description="Fraction of inner cuts made grey, per schedule unit.")

    @field_validator("cut_overview", "cut_innercut", "cut_icgray_p")
    @classmethod
    def _schedule(cls, v: CutSchedule, info: Any) -> CutSchedule:
        values = cut_schedule_values(v)
        # cut_icgray_p: DD greys inner cut i when i <= int(p · cuts), so any finite p is legal (p <= -1/cuts: none)
        if info.field_name != "cut_icgray_p" and any(x < 0 or x != int(x) or x > 256 for x in values):
            raise ValueError("cut counts must be whole numbers between 0 and 256")
        return v

    @field_validator("cut_ic_pow")
    @classmethod
    def _ic_pow_schedule(cls, v: float | CutSchedule) -> float | CutSchedule:
        if isinstance(v, (int, float)):
            return v
        if any(x < 0 for x in cut_schedule_values(v)):  # DD 5.7 indexes it per step; any negative one crashes
            raise ValueError("every value of a cut_ic_pow schedule must be >= 0")
        return v


def cut_schedule_values(v: CutSchedule) -> list[float]:
    if isinstance(v, str):
        return schedules.parse_cut_schedule(v)
    return schedules.cut_schedule_from_segments([(float(seg.value), seg.units) for seg in v])

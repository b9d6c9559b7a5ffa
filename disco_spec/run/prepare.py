"""Turn what the user passed (a spec or its path, an optional seed) into the spec, its document and the plan."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..models.spec_check import check_model_names
from ..plan.resolve import Plan, resolve_plan, with_concrete_seed
from ..spec.load import load_spec, spec_to_document
from ..spec.models import JobSpec
from ..spec.prompt_tokens import check_prompt_lengths


@dataclass
class PreparedSpec:
    """A spec ready to plan: loaded, its seed concrete (drawn or given), its prompts checked."""

    spec: JobSpec
    document: dict[str, Any]  # the spec as it will be recorded (spec.json)
    spec_dir: str | None  # the spec file's folder (None: a spec built in Python)
    seed_drawn: bool  # set_seed was 'random_seed' and a seed was drawn


@dataclass
class PreparedPlan(PreparedSpec):
    """A prepared spec and its plan."""

    plan: Plan


def prepare_spec(spec_or_path: JobSpec | str | os.PathLike, *, seed: int | None = None) -> PreparedSpec:
    """Load (if a path), fix the seed, check the prompts: everything before the plan."""
    spec_dir = None
    if isinstance(spec_or_path, JobSpec):
        spec = spec_or_path
    else:
        spec = load_spec(spec_or_path)
        spec_dir = str(Path(spec_or_path).resolve().parent)
    if seed is not None:
        if not 0 <= seed < 2**32:
            raise SpecError("--seed", [("--seed", f"must be between 0 and 4294967295 (got {seed})")])
        spec = spec.model_copy(update={"run": spec.run.model_copy(update={"set_seed": seed})})
    spec, drawn = with_concrete_seed(spec)
    check_prompt_lengths(spec)  # before any model loads
    check_model_names(spec)  # exit 2 naming the field, not a failed render
    return PreparedSpec(spec=spec, document=spec_to_document(spec), spec_dir=spec_dir, seed_drawn=drawn)


def prepare(spec_or_path: JobSpec | str | os.PathLike, *, seed: int | None = None) -> PreparedPlan:
    """prepare_spec, then resolve the plan (Video Input's frames are counted first by run.video_input)."""
    ready = prepare_spec(spec_or_path, seed=seed)
    return PreparedPlan(spec=ready.spec, document=ready.document, spec_dir=ready.spec_dir,
                        seed_drawn=ready.seed_drawn, plan=resolve_plan(ready.spec))

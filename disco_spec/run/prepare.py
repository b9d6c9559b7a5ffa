"""Turn what the user passed (a spec or its path, an optional seed) into the spec, its document and the plan."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..models.spec_check import check_model_names
from ..plan.resolve import Plan, resolve_plan, with_concrete_seed
from ..spec.load import load_spec, spec_to_document
from ..spec.models import JobSpec
from ..spec.prompt_tokens import check_prompt_lengths


def prepare(
    spec_or_path: JobSpec | str | os.PathLike, *, seed: int | None = None
) -> tuple[JobSpec, dict[str, Any], Plan, str | None, bool]:
    """Load (if a path), fix the seed, and resolve the plan."""
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
    return spec, spec_to_document(spec), resolve_plan(spec), spec_dir, drawn

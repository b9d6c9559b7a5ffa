"""Every check a spec gets before anything loads: fields, prompt lengths, model names. No torch.

`disco-spec validate` and `render` (before a run folder or a model) use these. `spec_file_problems`
runs every stage even when an earlier one found problems: the field rules (all passes of
`spec.load.check_document`), the 77-token prompt check and the model names are each run on what is
right in the file (wrong fields at their defaults), so one run reports every problem at once.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from ..errors import SpecError, one_line
from ..spec.load import check_document, read_document
from ..spec.models import CustomCheckpoint, JobSpec
from ..spec.prompt_tokens import prompt_length_problems
from .registry import REGISTRY

__all__ = ["check_model_names", "model_name_problems", "spec_file_problems"]

_KIND = {"diffusion": "diffusion model", "secondary": "secondary model", "clip": "CLIP model",
         "lpips": "LPIPS model", "depth": "depth model"}
_OTHER_FORM = {"diffusion": "; or a file as {path, sha256, config}", "secondary": "; or a file as {path, sha256}",
               "lpips": "; or a file as {path, sha256}", "clip": "; or {arch, pretrained} for open_clip"}


def _unknown(name: str, role: str) -> str:
    if role == "diffusion" and name.strip().lower() == "custom":
        return ("'custom' is DD's choice of your own checkpoint: give {path, sha256, config} instead (config: the "
                "registry entry whose architecture the file has; DD 5.7's custom settings are those of KaliYuga's "
                "models, e.g. 'watercolordiffusion')")
    same_role = [n for n, e in REGISTRY.items() if e.role == role]
    close = difflib.get_close_matches(name, same_role, n=3, cutoff=0.5)
    if not close:  # e.g. a different spelling: compare without case and separators
        squash = {n.lower().replace("_", "").replace("-", ""): n for n in same_role}
        close = [squash[k] for k in difflib.get_close_matches(
            name.lower().replace("_", "").replace("-", ""), list(squash), n=3, cutoff=0.5)]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    other = _OTHER_FORM.get(role, "")
    return f"unknown {_KIND[role]} {name!r}{hint} ({_KIND[role]}s: {', '.join(same_role)}{other})"


def model_name_problems(spec: JobSpec) -> list[tuple[str, str]]:
    """(field path, message) for every model name the registry does not have in the field's role."""
    m = spec.models
    refs: list[tuple[str, Any, str]] = [
        ("models.diffusion_model", m.diffusion_model, "diffusion"),
        ("models.secondary_model", m.secondary_model, "secondary"),
        ("models.lpips_model", m.lpips_model, "lpips"),
    ]
    refs += [(f"models.extra_clip_models[{i}].name", r.name, "clip")
             for i, r in enumerate(m.extra_clip_models) if r.name is not None]
    depth = spec.camera_3d.midas_depth_model
    if isinstance(depth, str):
        refs.append(("camera_3d.midas_depth_model", depth, "depth"))
    problems = []
    for where, ref, role in refs:
        if isinstance(ref, CustomCheckpoint):
            if role == "diffusion":
                entry = REGISTRY.get(ref.config)
                if entry is None or entry.role != "diffusion":
                    problems.append((f"{where}.config", _unknown(ref.config, "diffusion")))
            continue
        entry = REGISTRY.get(ref)
        if entry is None or entry.role != role:
            problems.append((where, _unknown(ref, role)))
    return problems


def check_model_names(spec: JobSpec) -> None:
    """Raise SpecError (exit 2) naming each model field whose name the registry lacks."""
    problems = model_name_problems(spec)
    if problems:
        raise SpecError("; ".join(f"{loc}: {msg}" for loc, msg in problems), problems)


def spec_file_problems(path: str | Path) -> list[tuple[str, str]]:
    """Every problem of every stage in one spec file ([] when it is valid)."""
    try:
        doc = read_document(path)
        _, problems, partial = check_document(doc)
    except SpecError as exc:  # unreadable, not TOML/JSON, too deep, another schema version
        return list(exc.problems or [("", str(exc))])
    if partial is not None:
        problems += [p for p in prompt_length_problems(partial) + model_name_problems(partial) if p not in problems]
    return [(one_line(str(loc)), one_line(str(msg))) for loc, msg in problems]  # one line each, as SpecError's

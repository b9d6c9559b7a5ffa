"""The `parameters` text chunk, as AUTOMATIC1111's web UI writes it: where image hosts, galleries and PNG readers
(CivitAI-style parsers, A1111's own "PNG Info") look for a picture's prompt.

    A beautiful painting of a singular lighthouse, yellow color scheme:0.5
    Negative prompt: blurry:-1
    Steps: 250, Sampler: ddim, CLIP guidance scale: 5000, Seed: 42, Size: 1280x768, Model: 512x512_diffusion_…,
    Model hash: 9c111ab89d, CLIP models: "ViTB32, RN50", Version: disco-spec 0.1.0, Manifest: 3f2a…

The prompts are the item's text prompts as written (DD's `text:weight`); those with a negative weight go
on the `Negative prompt:` line. The settings line is A1111's `key: value, …` form (a value holding a comma,
colon or quote is written as a JSON string, as A1111 quotes it). disco-spec's own chunks (the spec, the
seed, the manifest id) stay the recipe: this one is for other tools, and `inspect` shows it parsed.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

KEY_PARAMETERS = "parameters"
NEGATIVE = "Negative prompt:"
MAX_PARAMETERS_CHARS = 64 * 1024  # parse at most this much (the chunk itself is bounded by pngmeta's caps)
# A1111's settings-line pattern: `key: value` or `key: "quoted, value"`, comma separated
_SETTING = re.compile(r'\s*([\w ./\-]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ',:"\n') else text


def parameters_text(spec: Mapping[str, Any], item: Any, models: Sequence[Mapping[str, Any]], width: int, height: int,
                    manifest_id: str | None, version: str) -> str:
    """The `parameters` text of one image: its prompts, then steps, sampler, guidance, seed, size, models, id."""
    prompts = list(getattr(item, "text_prompts", []) or [])
    positive = ", ".join(" ".join(p.source.split()) for p in prompts if p.weight >= 0)
    negative = ", ".join(" ".join(p.source.split()) for p in prompts if p.weight < 0)
    diffusion = spec.get("diffusion") or {}
    guidance = spec.get("guidance") or {}
    unet = next((m for m in models if m.get("role") == "diffusion"), None)
    clips = [str(m.get("name")) for m in models if m.get("role") == "clip"]
    settings: list[tuple[str, Any]] = [
        ("Steps", diffusion.get("steps")),
        ("Sampler", diffusion.get("diffusion_sampling_mode")),
        ("CLIP guidance scale", _whole(guidance.get("clip_guidance_scale"))),
        ("Seed", item.seed),
        ("Size", f"{width}x{height}"),
    ]
    if getattr(item, "skip_steps", 0):
        settings.append(("Skip steps", item.skip_steps))
    if (spec.get("animation") or {}).get("animation_mode", "None") != "None":
        settings.append(("Frame", item.frame))
    if unet is not None:
        settings += [("Model", unet.get("name")), ("Model hash", str(unet.get("sha256") or "")[:10])]
    if clips:
        settings.append(("CLIP models", ", ".join(clips)))
    settings.append(("Version", f"disco-spec {version}"))
    if manifest_id:
        settings.append(("Manifest", manifest_id))
    lines = [positive]
    if negative:
        lines.append(f"{NEGATIVE} {negative}")
    lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in settings if v is not None))
    return "\n".join(lines)


def _whole(x: Any) -> Any:
    return int(x) if isinstance(x, float) and x.is_integer() else x


def parse_parameters(text: str) -> dict[str, Any]:
    """A `parameters` text (disco-spec's or A1111's) read back: {prompt, negative_prompt, settings: {key: value}}."""
    lines = text[:MAX_PARAMETERS_CHARS].strip().split("\n")
    settings: dict[str, str] = {}
    if lines and len(_SETTING.findall(lines[-1])) >= 3:  # A1111: the last line holds the settings
        for key, value in _SETTING.findall(lines.pop()):
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            settings[key.strip()] = value.strip()
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith(NEGATIVE):
            in_negative, line = True, line[len(NEGATIVE):].strip()
        (negative if in_negative else prompt).append(line)
    return {"prompt": "\n".join(prompt).strip(), "negative_prompt": "\n".join(negative).strip(), "settings": settings}


def format_parameters(parsed: Mapping[str, Any]) -> list[str]:
    """`inspect`'s lines for a parsed `parameters` chunk."""
    lines = ["  parameters (A1111 form, for other tools):", f"    prompt               {parsed.get('prompt')}"]
    if parsed.get("negative_prompt"):
        lines.append(f"    negative prompt      {parsed['negative_prompt']}")
    lines += [f"    {k:<20} {v}" for k, v in (parsed.get("settings") or {}).items()]
    return lines

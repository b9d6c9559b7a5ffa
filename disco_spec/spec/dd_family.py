"""Which kind of settings file this is, by its content: DD's own, progrockdiffusion's, discoart's, or none.

DD's report and notebook names are the common language: progrockdiffusion's `settings.json` (and
the partial copies its users pass with `-s`) and discoart's YAML/JSON configs use DD's names with a
few of their own. `to_dd_names` rewrites those few into DD's (discoart's `clip_models` list into
DD's checkboxes, progrockdiffusion's CLIP weights and `sampling_mode`) and names, in a warning, every
setting of theirs a spec cannot express. A file with too few of DD's names is refused (exit 2),
saying what it looks like. No torch.
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError
from .dd_key_map import REPORT_KEYS_52
from .dd_versions import LATER_CLIP_MODELS, LDSR_KEYS, V53_KEYS, V54_KEYS

__all__ = ["DD_FAMILY", "classify", "to_dd_names"]

DD_FAMILY = ("Disco Diffusion", "progrockdiffusion", "discoart")

# Settings of progrockdiffusion that DD does not have (its settings.json, github.com/lowfuel/progrockdiffusion).
PRD_ONLY = (
    "render_mask", "skip_steps_ratio", "cut_ic_pow_final", "smooth_schedules", "stop_early",
    "fix_brightness_contrast", "high_contrast_threshold", "high_contrast_adjust_amount", "high_contrast_start",
    "high_contrast_adjust", "low_contrast_threshold", "low_contrast_adjust_amount", "low_contrast_start",
    "low_contrast_adjust", "high_brightness_threshold", "high_brightness_adjust_amount", "high_brightness_start",
    "high_brightness_adjust", "low_brightness_threshold", "low_brightness_adjust_amount", "low_brightness_start",
    "low_brightness_adjust", "gobig_scale", "gobig_skip_ratio", "gobig_orientation", "gobig_overlap",
    "symmetry_loss_v", "symmetry_loss_h", "symm_loss_scale", "symm_switch", "use_jpg",
    "SLIPB16", "SLIPL16", "width_height_scale",  # the first settings.json (2022-03, e.g. njbbaer's fork)
    "ViTL14_336",
)
# Settings of discoart that DD does not have (discoart/resources/default.yml, github.com/jina-ai/discoart).
DISCOART_ONLY = (
    "clip_models", "clip_models_schedules", "save_rate", "gif_fps", "gif_size_ratio", "batch_size",
    "on_misspelled_token", "diffusion_model_config", "cut_schedules_group", "name_docarray", "skip_event",
    "stop_event", "text_clip_on_cpu", "truncate_overlength_prompt", "image_output", "visualize_cuts",
    "init_document",
)
# Names that say nothing about DD on their own (many tools have a 'seed' or 'steps').
_GENERIC = {"seed", "steps", "width", "height", "eta", "init_image", "init_scale", "batch_name", "fps", "n_batches"}
_DD_NAMES = (set(REPORT_KEYS_52) | set(V53_KEYS) | set(V54_KEYS) | set(LATER_CLIP_MODELS) | set(LDSR_KEYS)
             | {"animation_mode", "width_height", "width_height_for_512x512_models", "set_seed", "display_rate",
                "use_checkpoint", "intermediate_saves", "vr_mode"}) - _GENERIC

# discoart's "ARCH::TAG" CLIP names for DD's checkboxes (DD loads these through OpenAI's CLIP).
_DISCOART_OPENAI = {"ViT-B-32": "ViTB32", "ViT-B-16": "ViTB16", "ViT-L-14": "ViTL14", "ViT-L-14-336": "ViTL14_336px",
                    "RN50": "RN50", "RN101": "RN101", "RN50x4": "RN50x4", "RN50x16": "RN50x16", "RN50x64": "RN50x64"}
_CHECKBOXES = ("ViTB32", "ViTB16", "ViTL14", "RN101", "RN50", "RN50x4", "RN50x16", "RN50x64")


def _fail(name: str, msg: str) -> SpecError:
    return SpecError(f"{name}: {msg}", [(name, msg)])


def classify(doc: Any, name: str, syntax: str) -> str:
    """The family of a parsed settings file, or exit 2 saying what it looks like instead."""
    kind = "YAML" if syntax == "yaml" else "JSON"
    if not isinstance(doc, dict):
        raise _fail(name, f"a {kind} {type(doc).__name__}, not a settings object: a DD settings file is one "
                          "{name: value} object")
    keys = set(map(str, doc))
    prd, discoart = keys & set(PRD_ONLY), keys & set(DISCOART_ONLY)
    dd = keys & _DD_NAMES
    if len(discoart) >= 2 and len(discoart) >= len(prd):
        family = "discoart"
    elif len(prd) >= 2:
        family = "progrockdiffusion"
    elif len(dd) >= 3:
        family = "Disco Diffusion"
    else:
        raise _fail(name, _looks_like(doc, kind))
    if "text_prompts" not in doc:
        other = [k for k in ("prompts", "prompt", "text_prompt", "text") if k in doc]
        hint = (f" (it has {other[0]!r}: another tool's name? DD's is text_prompts, {{frame: [prompts]}})"
                if other else "")
        raise _fail(name, f"no text_prompts in this {family} settings file{hint}: give the prompts; "
                          "import-dd never fills in DD's demo prompt")
    return family


def _looks_like(doc: dict, kind: str) -> str:
    keys = list(map(str, doc))
    if "name" in doc and ({"dependencies", "devDependencies", "scripts", "version"} & set(keys)):
        what = "an npm package.json"
    elif {"prompt", "negative_prompt"} & set(keys) or {"sampler_name", "cfg_scale"} & set(keys):
        what = "Stable Diffusion generation parameters"
    elif "schema_version" in doc:
        what = "a disco-spec spec (read it with validate / render, not import-dd)"
    else:
        shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
        what = f"a {kind} object without Disco Diffusion's settings (its keys: {shown or 'none'})"
    return f"not a Disco Diffusion settings file: this is {what}"


def to_dd_names(doc: dict[str, Any], family: str, name: str, warnings: list[str]) -> dict[str, Any]:
    """The file's settings under DD's names; every setting of another tool a spec cannot express is named."""
    own = [(k, v) for k, v in doc.items() if v in ("auto", "random") and k != "set_seed"]
    if own:  # DD has no such values: progrockdiffusion's settings (also in its partial files)
        raise SpecError(f"{name}: 'auto'/'random' values", [
            (k, f"{v!r} is a value progrockdiffusion computes or draws itself; give the number it should be")
            for k, v in own])
    if family == "progrockdiffusion":
        return _from_prd(doc, name, warnings)
    if family == "discoart":
        return _from_discoart(doc, name, warnings)
    return doc


def _extras(doc: dict, only: tuple[str, ...], family: str, warnings: list[str]) -> None:
    present = [f"{k} = {doc[k]!r}" for k in only if k in doc and doc[k] not in (None, False, 0, "", [], {})]
    if present:
        warnings.append(f"{family} settings a spec cannot express, not rendered (the image will differ where they "
                        "act): " + "; ".join(present))


def _from_prd(doc: dict[str, Any], name: str, warnings: list[str]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k not in PRD_ONLY}
    if "ViTL14_336" in doc:
        out["ViTL14_336px"] = doc["ViTL14_336"]
    weighted = []
    for key in (*_CHECKBOXES, *LATER_CLIP_MODELS):
        value = out.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value != 0  # progrockdiffusion gives each CLIP model a weight; 0 is off
            if value not in (0, 1):
                weighted.append(f"{key} = {value!r}")
    if weighted:
        warnings.append("progrockdiffusion CLIP weights other than 1 cannot be expressed (the spec's CLIP models add "
                        "their gradients with weight 1): " + ", ".join(weighted))
    if "sampling_mode" in doc and doc["sampling_mode"] in ("ddim", "plms") and "diffusion_sampling_mode" not in doc:
        out["diffusion_sampling_mode"] = out.pop("sampling_mode")  # progrockdiffusion's name for the sampler
    scale = doc.get("width_height_scale")
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        for key in ("width", "height"):  # progrockdiffusion's first prd.py: width_height = [width*scale, height*scale]
            if isinstance(out.get(key), (int, float)) and not isinstance(out[key], bool):
                out[key] = out[key] * scale
    if "set_seed" in doc and "seed" in doc:  # prd.py reads set_seed; a 'seed' in its file is never read
        warnings.append(f"progrockdiffusion reads set_seed ({doc['set_seed']!r}), not seed: seed = {doc['seed']!r} "
                        "in the file ignored, as progrockdiffusion ignores it")
        out.pop("seed")
    _extras(doc, tuple(k for k in PRD_ONLY if k not in ("ViTL14_336", "width_height_scale")), "progrockdiffusion",
            warnings)
    return out


def _from_discoart(doc: dict[str, Any], name: str, warnings: list[str]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k not in DISCOART_ONLY}
    prompts = doc.get("text_prompts")
    if isinstance(prompts, str):
        out["text_prompts"] = {"0": [prompts]}
    elif isinstance(prompts, list):
        out["text_prompts"] = {"0": prompts}
    if doc.get("seed") is None:
        out.pop("seed", None)  # discoart draws one, as DD's random_seed
        out["set_seed"] = "random_seed"
    models = doc.get("clip_models")
    if isinstance(models, list):
        out.update(dict.fromkeys(_CHECKBOXES, False))
        extra = []
        for ref in models:
            arch, _, tag = str(ref).partition("::")
            if tag == "openai" and arch in _DISCOART_OPENAI:
                out[_DISCOART_OPENAI[arch]] = True
            else:
                extra.append({"arch": arch, "pretrained": tag or "openai"})
        if extra:
            out["extra_clip_models"] = extra
    if isinstance(doc.get("batch_size"), int) and doc["batch_size"] != 1:
        warnings.append(f"discoart batch_size = {doc['batch_size']} cannot be expressed: the spec renders one image "
                        "per seed, as DD does (use n_batches)")
    _extras({k: v for k, v in doc.items() if k not in ("clip_models", "batch_size")}, DISCOART_ONLY, "discoart",
            warnings)
    return out

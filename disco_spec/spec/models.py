"""The job spec, version 1: the single source of truth for validation, the JSON Schema and its docs.

Field names are Disco Diffusion 5.2's own (artists recognise `clip_guidance_scale`, `cutn_batches`,
`frames_skip_steps`), grouped into sections. Defaults are DD 5.2's *code* defaults (the `#@param` lines of
its settings cells, e.g. disco.py:1889-1896 (BasicSettings cell); where the community guide differs, the code
wins). Every model forbids unknown keys.

This module imports only pydantic and the standard library, so validating a spec never loads torch.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from ..atomic import MAX_NAME_BYTES, TEMP_NAME_EXTRA_BYTES

from pydantic import Field, field_validator, model_validator

from . import schedules
from .animation_sections import (  # noqa: F401 - the animation sections are part of the spec's models
    MOTION_FIELDS,
    AnimationSection,
    Camera3DSection,
    KeyFrames,
    TurboSection,
    VideoInputSection,
    VideoSection,
    VRSection,
    keyframe_values,
)
from .cut_sections import CutSchedule, CutSegment, CutsSection, cut_schedule_values  # noqa: F401
from .fields import (  # noqa: F401 - the bounds are part of the spec's contract
    MAX_BATCH_NAME_LENGTH,
    MAX_BATCH_NAME_SUFFIX_BYTES,
    MAX_FRAMES,
    MAX_SCHEDULE_KEYS,
    Finite,
    NonNegInt,
    Seed,
    Side,
    Section,
)
from .engine import EngineSection
from .symmetry_section import SymmetrySection

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)

# DD's CLIP checkboxes, in the order DD loads them (the order matters for float summation).
DD_CLIP_NAMES = ("ViTB32", "ViTB16", "ViTL14", "RN50", "RN50x4", "RN50x16", "RN50x64", "RN101")

DEFAULT_TEXT_PROMPTS: dict[int, list[str]] = {
    0: [
        "A beautiful painting of a singular lighthouse, shining its light across a tumultuous sea of "
        "blood by greg rutkowski and thomas kinkade, Trending on artstation.",
        "yellow color scheme",
    ],
    100: ["This set of prompts start at frame 100", "This prompt has weight five:5"],
}

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class CustomCheckpoint(Section):
    """A local checkpoint file, pinned by its SHA-256 (the file is refused if the hash differs)."""

    path: str = Field(description="Path to the checkpoint file (relative paths resolve against the spec's folder).")
    sha256: str = Field(description="Expected SHA-256 of the file, 64 lowercase hex digits.")
    config: str = Field(
        default="512x512_diffusion_uncond_finetune_008100",
        description="Registry entry whose architecture/config this checkpoint uses.",
    )

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        v = v.strip().lower()
        if not _SHA256.match(v):
            raise ValueError("must be 64 hexadecimal digits (a SHA-256)")
        return v


ModelRef = Union[str, CustomCheckpoint]


class ClipModelRef(Section):
    """A CLIP model beyond DD's eight checkboxes: a registry name, or any open_clip `arch` + `pretrained`."""

    name: str | None = Field(default=None, description="Registry name, e.g. 'tiny-clip' or 'ViT-B-32'.")
    arch: str | None = Field(default=None, description="open_clip architecture name, e.g. 'ViT-B-32'.")
    pretrained: str | None = Field(
        default=None, description="open_clip pretrained tag (e.g. 'laion2b_s34b_b79k') or a local file path."
    )
    sha256: str | None = Field(default=None, description="Required when `pretrained` is a local file path.")

    @model_validator(mode="after")
    def _one_form(self) -> "ClipModelRef":
        if (self.name is None) == (self.arch is None):
            raise ValueError("give either `name` (registry entry) or `arch` (+ `pretrained`), not both or neither")
        if self.arch is not None and self.pretrained is None:
            raise ValueError("`arch` needs `pretrained` (an open_clip tag or a local file)")
        if self.sha256 is not None and not _SHA256.match(self.sha256.lower()):
            raise ValueError("`sha256` must be 64 hexadecimal digits")
        return self


class ModelsSection(Section):
    """Diffusion, secondary, CLIP and LPIPS models (DD cell 2)."""

    diffusion_model: ModelRef = Field(
        default="512x512_diffusion_uncond_finetune_008100",
        description="Registry name ('512x512_diffusion_uncond_finetune_008100', '256x256_diffusion_uncond', "
        "'tiny-uncond') or a custom checkpoint {path, sha256, config}.",
    )
    use_secondary_model: bool = Field(default=True, description="Use the small v-objective model for CLIP's x0 estimate.")
    secondary_model: ModelRef = Field(default="secondary_model_imagenet_2", description="Secondary model entry or file.")
    use_checkpoint: bool = Field(default=True, description="Gradient checkpointing in the UNet (saves memory).")
    check_model_SHA: bool = Field(
        default=False,
        description="Re-hash cached weight files on every run instead of trusting the (path, size, mtime) hash cache. "
        "Downloads are always verified.",
    )
    ViTB32: bool = Field(default=True, description="Guide with CLIP ViT-B/32 (gradients of all CLIP models add up).")
    ViTB16: bool = Field(default=True, description="Guide with CLIP ViT-B/16.")
    ViTL14: bool = Field(default=False, description="Guide with CLIP ViT-L/14.")
    RN101: bool = Field(default=False, description="Guide with CLIP RN101.")
    RN50: bool = Field(default=True, description="Guide with CLIP RN50.")
    RN50x4: bool = Field(default=False, description="Guide with CLIP RN50x4.")
    RN50x16: bool = Field(default=False, description="Guide with CLIP RN50x16.")
    RN50x64: bool = Field(default=False, description="Guide with CLIP RN50x64.")
    extra_clip_models: list[ClipModelRef] = Field(
        default_factory=list, description="Further CLIP models (registry names or open_clip arch+pretrained)."
    )
    lpips_model: ModelRef = Field(default="lpips-vgg", description="LPIPS network for the init loss.")

    def enabled_clip_names(self) -> list[str]:
        return [n for n in DD_CLIP_NAMES if getattr(self, n)]


MAX_BATCH_NAME_BYTES = MAX_NAME_BYTES - TEMP_NAME_EXTRA_BYTES - MAX_BATCH_NAME_SUFFIX_BYTES


class RunSection(Section):
    """Batch naming, counts, seed, previews, DD's resume settings (DD 'Do the Run!' cell)."""

    batch_name: str = Field(
        default="TimeToDisco", min_length=1, max_length=MAX_BATCH_NAME_LENGTH,
        description="Output folder and file stem: one path component (no '/', '\\', '..').",
    )
    n_batches: int = Field(default=50, ge=1, le=100000, description="Still images to render (forced to 1 in animation modes).")
    set_seed: Seed | Literal["random_seed"] = Field(
        default="random_seed",
        description="Base seed, 0..2**32-1. 'random_seed' draws one at render time and records it (the manifest and "
        "PNGs carry the drawn seed so the run can be rebuilt).",
    )
    display_rate: int = Field(default=50, ge=1, description="Write a preview every this many steps (and at the last).")
    resume_run: bool = Field(
        default=False, description="Re-render run `run_to_resume` from frame `resume_from_frame` with this spec (DD's resume)."
    )
    run_to_resume: Literal["latest"] | NonNegInt | Annotated[str, Field(pattern=r"^run-[0-9]{4,}$")] = Field(
        default="latest", description="The run to resume: 'latest', a run number (7 = run-0007) or a run folder's name."
    )
    resume_from_frame: Literal["latest"] | NonNegInt = Field(
        default="latest", description="The first frame rendered again ('latest': the first frame the run is missing)."
    )
    retain_overwritten_frames: bool = Field(
        default=False, description="Move the frames a resume renders again to the run's retained/ folder first."
    )

    @field_validator("batch_name")
    @classmethod
    def _one_path_component(cls, v: str) -> str:
        # The name becomes {out}/{batch_name}/ and file stems: it must not lead out of --out.
        if v.strip() in (".", "..") or v != v.strip() or not v:
            raise ValueError("must be a plain name (not '.', '..', nor with leading/trailing spaces)")
        bad = sorted({ch for ch in v if ch in '/\\:' or ord(ch) < 32 or ord(ch) == 127})
        if bad:
            shown = ", ".join(repr(ch) for ch in bad)
            raise ValueError(f"must be one path component: no path separators, ':' or control characters ({shown})")
        try:
            n = len(v.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("holds a lone surrogate (not text a file name can hold)") from None
        if n > MAX_BATCH_NAME_BYTES:  # file names are bounded in bytes: `.{name}_99999-10000.png.<pid>.<hex>.tmp`
            raise ValueError(f"is {n} bytes in UTF-8; at most {MAX_BATCH_NAME_BYTES} bytes, so that the longest file "
                             f"name made from it (a partial's temp file) fits the {MAX_NAME_BYTES} bytes a name may have")
        return v


class DiffusionSection(Section):
    """Sampler, step count and output size (DD 'Basic settings' and extra settings)."""

    steps: int = Field(default=250, ge=2, le=10000, description="Respaced diffusion steps K (guided-diffusion cannot respace 1 step).")
    width_height: list[Side] = Field(
        default_factory=lambda: [1280, 768],
        min_length=2,
        max_length=2,
        description="Requested [width, height]; each is floored to a multiple of 64.",
    )
    diffusion_sampling_mode: Literal["ddim", "plms"] = Field(default="ddim", description="Sampler: 'ddim' or 'plms'.")
    eta: Finite = Field(default=0.8, ge=-10, le=10, description="DDIM stochasticity (ignored by PLMS); a negative eta "
                        "flips the noise's sign, as in DD.")
    clip_denoised: bool = Field(default=False, description="Clamp the model's x0 prediction to [-1, 1] in the sampler.")
    randomize_class: bool = Field(default=True, description="Accepted for DD compatibility; has no effect (DD passes no class).")


class GuidanceSection(Section):
    """Loss weights and gradient clamping (DD 'Basic settings', 'Advanced', hidden extras)."""

    clip_guidance_scale: Finite = Field(default=5000, description="Weight of the CLIP spherical-distance loss.")
    # DD multiplies each loss by its scale and nothing more: negative scales are legal (they reward the term).
    tv_scale: Finite = Field(default=0, description="Weight of the total-variation (smoothness) loss.")
    range_scale: Finite = Field(default=150, description="Weight of the penalty on values outside [-1, 1].")
    sat_scale: Finite = Field(default=0, description="Weight of the saturation penalty.")
    clamp_grad: bool = Field(default=True, description="Cap the guidance gradient's RMS at clamp_max.")
    clamp_max: Finite = Field(default=0.05, description="RMS cap of the gradient; 0 cancels guidance, a negative value "
                              "reverses it (DD's min(rms, clamp_max)/rms).")
    fuzzy_prompt: bool = Field(default=False, description="Replace each text prompt's embedding by 25 noisy copies.")
    rand_mag: Finite = Field(default=0.05, description="Standard deviation of the fuzzy_prompt noise.")
    text_prompt_weight_suffix_in_text: bool = Field(
        default=True,
        description="DD 5.2 quirk Q1: tokenise text prompts with their ':weight' suffix. False encodes the stripped text.",
    )


class InitSection(Section):
    """Init image, Perlin init and their loss (DD 'Init settings' and 'Advanced')."""

    init_image: str | None = Field(default=None, description="Path or URL; '', 'none', 'None', 'NONE' mean no init.")
    init_image_sha256: str | None = Field(default=None, description="Optional pin of the init image's SHA-256.")
    init_scale: Finite = Field(default=1000, description="LPIPS weight toward the init (negative pushes away, as in DD).")
    skip_steps: int = Field(default=10, ge=0, description="Respaced steps skipped at the start; must be < steps.")
    perlin_init: bool = Field(default=False, description="Start from Perlin noise instead of the init image or previous frame.")
    perlin_mode: Literal["mixed", "color", "gray"] = Field(default="mixed", description="Perlin noise: 'mixed', 'color' or 'gray'.")

    @field_validator("init_image")
    @classmethod
    def _none_words(cls, v: str | None) -> str | None:
        if v is not None and v.strip() in ("", "none", "None", "NONE"):
            return None
        return v


PromptList = list[str]
PromptSchedule = Union[PromptList, dict[str, PromptList]]


class PromptsSection(Section):
    """Text and image prompts keyed by the frame where they start (held until the next key)."""

    text_prompts: PromptSchedule = Field(
        default_factory=lambda: {str(k): v for k, v in DEFAULT_TEXT_PROMPTS.items()},
        description="{frame: [prompt, ...]} (a plain list means {0: list}); 'text:weight' suffixes set weights.",
    )
    image_prompts: PromptSchedule = Field(default_factory=dict, description="Like text_prompts, with image paths/URLs.")

    @field_validator("text_prompts", "image_prompts")
    @classmethod
    def _frames(cls, v: PromptSchedule) -> PromptSchedule:
        if isinstance(v, list):
            v = {"0": v}
        if len(v) > MAX_SCHEDULE_KEYS:
            raise ValueError(f"has {len(v)} frame keys; at most {MAX_SCHEDULE_KEYS} are allowed")
        for key, prompts in v.items():
            if not re.fullmatch(r"\d{1,7}", key.strip()):
                raise ValueError(f"frame key {key!r} must be a non-negative integer")
            for p in prompts:
                schedules.parse_prompt(p)
        return v

    def by_frame(self, which: str) -> dict[int, list[str]]:
        v = getattr(self, which)
        if isinstance(v, list):
            return {0: list(v)} if v else {}
        return {int(k): list(p) for k, p in sorted(v.items(), key=lambda kv: int(kv[0]))}


class SavingSection(Section):
    """Intermediate saves (DD 'Saving')."""

    intermediate_saves: NonNegInt | list[NonNegInt] = Field(
        default=0, description="n > 0: n evenly spaced partials; a list: loop iterations to save at."
    )
    intermediates_in_subfolder: bool = Field(default=True, description="Write intermediate saves into partials/.")


# ---------------------------------------------------------------------------------------------
# The whole spec
# ---------------------------------------------------------------------------------------------


class JobSpec(Section):
    """A disco-spec job, version 1."""

    schema_url: str | None = Field(default=None, alias="$schema", description="Optional JSON Schema URL/path for editors.")
    schema_version: Literal[1] = Field(description="Spec format version; this build reads version 1.")
    name: str | None = Field(default=None, description="Human name of the job (MLflow experiment); defaults to batch_name.")
    description: str | None = Field(default=None, description="Free text about the job (the MLflow run's description).")
    imported_from: dict[str, Any] | None = Field(
        default=None, description="Provenance written by `import-dd`: source file and which values were assumed."
    )
    run: RunSection = Field(default_factory=RunSection)
    models: ModelsSection = Field(default_factory=ModelsSection)
    diffusion: DiffusionSection = Field(default_factory=DiffusionSection)
    guidance: GuidanceSection = Field(default_factory=GuidanceSection)
    cuts: CutsSection = Field(default_factory=CutsSection)
    init: InitSection = Field(default_factory=InitSection)
    prompts: PromptsSection = Field(default_factory=PromptsSection)
    animation: AnimationSection = Field(default_factory=AnimationSection)
    camera_3d: Camera3DSection = Field(default_factory=Camera3DSection)
    video_input: VideoInputSection = Field(default_factory=VideoInputSection)
    turbo: TurboSection = Field(default_factory=TurboSection)
    vr: VRSection = Field(default_factory=VRSection)
    saving: SavingSection = Field(default_factory=SavingSection)
    video: VideoSection = Field(default_factory=VideoSection)
    symmetry: SymmetrySection = Field(default_factory=SymmetrySection)
    engine: EngineSection = Field(default_factory=EngineSection)

    @model_validator(mode="after")
    def _cross_field(self) -> "JobSpec":
        steps = self.diffusion.steps
        if self.init.skip_steps >= steps:
            raise FieldError(("init", "skip_steps"), f"must be less than diffusion.steps ({steps})", self.init.skip_steps)
        pct = schedules.parse_percent(self.animation.frames_skip_steps)
        if self.animation.animation_mode != "None" and schedules.calc_frames_skip_steps(steps, pct) >= steps:
            raise FieldError(
                ("animation", "frames_skip_steps"),
                f"skips {schedules.calc_frames_skip_steps(steps, pct)} of {steps} steps; must leave at least one",
                self.animation.frames_skip_steps,
            )
        m = self.models
        if not m.enabled_clip_names() and not m.extra_clip_models:
            raise FieldError(("models",), "enable at least one CLIP model (e.g. ViTB32 = true)", None)
        texts, images = self.prompts.by_frame("text_prompts"), self.prompts.by_frame("image_prompts")
        if not texts and not images:
            raise FieldError(("prompts",), "needs at least one text or image prompt", None)
        frames = self.animation.max_frames if self.animation.animation_mode != "None" else 1
        texts_at, images_at = schedules.prompt_schedule_lookup(texts), schedules.prompt_schedule_lookup(images)
        for frame in sorted({0, *texts, *images}):
            if frame >= frames:
                break
            t = [schedules.parse_prompt(p)[1] for p in texts_at(frame)]
            i = [schedules.parse_prompt(p)[1] for p in images_at(frame)]
            if not t and not i:  # before the sum: an empty list sums to 0, which would hide the real cause
                raise FieldError(("prompts",), f"frame {frame} has no text or image prompt", None)
            total = prompt_weight_total(t, i, self.guidance.fuzzy_prompt)
            if abs(total) < 1e-3:
                raise FieldError(
                    ("prompts", "text_prompts"),
                    f"at frame {frame} the prompt weights sum to {total:g}; they must not sum to 0 "
                    "(DD divides by the sum; e.g. give the positive prompt weight 2 when the negative one is -1)",
                    None,
                )
        return self


FUZZY_COPIES = 25  # with fuzzy_prompt, DD replaces each text embedding by 25 noisy copies


def prompt_weight_total(text_weights: list[float], image_weights: list[float], fuzzy: bool) -> float:
    """DD's normaliser: each text prompt gives 1 embedding of weight w (fuzzy: 25 noisy copies instead of it),
    each image 16 cuts of w/16."""
    copies = FUZZY_COPIES if fuzzy else 1
    return sum(w * copies for w in text_weights) + sum(image_weights)


class FieldError(ValueError):
    """A cross-field error that knows which field it belongs to (picked up by the error formatter)."""

    def __init__(self, loc: tuple[str, ...], msg: str, got: Any):
        self.loc = loc
        self.got = got
        super().__init__(f"{'.'.join(loc)}: {msg}")

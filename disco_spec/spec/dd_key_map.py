"""Where each key of a DD 5.2 settings report goes in the spec, and the DD defaults for what it lacks.

The 66 report keys in file order, the spec section and path each maps to (:data:`REPORT_KEY_MAP`), the
keys whose JSON values may need coercing to int / float / bool, the settings the report never holds
(:data:`NOT_IN_REPORT`), and the lookup of a spec field's default (DD's default) from the spec models.
Data and lookups only; the conversions themselves are in ``dd_import``. No torch.
"""

from __future__ import annotations

from typing import Any

from .models import MOTION_FIELDS, JobSpec

__all__ = ["BOOL_KEYS", "DD52_DIFFUSION_MODELS", "FLOAT_KEYS", "INT_KEYS", "NOT_IN_REPORT", "REPORT_KEYS_52",
           "REPORT_KEY_MAP", "SECTION_OF", "dd_default", "section_classes"]

# The 66 keys of a DD 5.2 report, in file order (disco.py:1430 (save_settings)).
REPORT_KEYS_52: tuple[str, ...] = (
    "text_prompts", "image_prompts", "clip_guidance_scale", "tv_scale", "range_scale", "sat_scale",
    "cutn_batches", "max_frames", "interp_spline", "init_image", "init_scale", "skip_steps", "frames_scale",
    "frames_skip_steps", "perlin_init", "perlin_mode", "skip_augs", "randomize_class", "clip_denoised",
    "clamp_grad", "clamp_max", "seed", "fuzzy_prompt", "rand_mag", "eta", "width", "height", "diffusion_model",
    "use_secondary_model", "steps", "diffusion_steps", "diffusion_sampling_mode",
    "ViTB32", "ViTB16", "ViTL14", "RN101", "RN50", "RN50x4", "RN50x16", "RN50x64",
    "cut_overview", "cut_innercut", "cut_ic_pow", "cut_icgray_p", "key_frames",
    "angle", "zoom", "translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y",
    "rotation_3d_z", "midas_depth_model", "midas_weight", "near_plane", "far_plane", "fov", "padding_mode",
    "sampling_mode", "video_init_path", "extract_nth_frame", "video_init_seed_continuity", "turbo_mode",
    "turbo_steps", "turbo_preroll",
)

SECTION_OF: dict[str, str] = {
    **dict.fromkeys(("text_prompts", "image_prompts"), "prompts"),
    **dict.fromkeys(("clip_guidance_scale", "tv_scale", "range_scale", "sat_scale", "clamp_grad", "clamp_max",
                     "fuzzy_prompt", "rand_mag"), "guidance"),
    **dict.fromkeys(("cutn_batches", "skip_augs", "cut_overview", "cut_innercut", "cut_ic_pow", "cut_icgray_p"), "cuts"),
    **dict.fromkeys(("max_frames", "interp_spline", "frames_scale", "frames_skip_steps", "key_frames", *MOTION_FIELDS),
                    "animation"),
    **dict.fromkeys(("init_image", "init_scale", "skip_steps", "perlin_init", "perlin_mode"), "init"),
    **dict.fromkeys(("randomize_class", "clip_denoised", "eta", "steps", "diffusion_sampling_mode"), "diffusion"),
    **dict.fromkeys(("diffusion_model", "use_secondary_model", "ViTB32", "ViTB16", "ViTL14", "RN101", "RN50",
                     "RN50x4", "RN50x16", "RN50x64"), "models"),
    **dict.fromkeys(("midas_depth_model", "midas_weight", "near_plane", "far_plane", "fov", "padding_mode",
                     "sampling_mode"), "camera_3d"),
    **dict.fromkeys(("video_init_path", "extract_nth_frame", "video_init_seed_continuity"), "video_input"),
    **dict.fromkeys(("turbo_mode", "turbo_steps", "turbo_preroll"), "turbo"),
}

# Report key -> spec path it is written to. `diffusion_steps` is derived from `steps`
# (disco.py:1914 (BasicSettings cell)): it is checked against the report, not written.
REPORT_KEY_MAP: dict[str, str | None] = {
    key: f"{SECTION_OF[key]}.{key}" for key in REPORT_KEYS_52 if key in SECTION_OF
}
REPORT_KEY_MAP.update({
    "seed": "run.set_seed",
    "width": "diffusion.width_height[0]",
    "height": "diffusion.width_height[1]",
    "diffusion_steps": None,
})
assert set(REPORT_KEY_MAP) == set(REPORT_KEYS_52) and len(REPORT_KEYS_52) == 66

INT_KEYS = {"cutn_batches", "max_frames", "skip_steps", "steps", "extract_nth_frame", "turbo_preroll",
             "width", "height", "seed", "diffusion_steps"}
FLOAT_KEYS = {"clip_guidance_scale", "tv_scale", "range_scale", "sat_scale", "init_scale", "frames_scale",
               "clamp_max", "rand_mag", "eta", "midas_weight", "near_plane", "far_plane", "fov"}
BOOL_KEYS = {"perlin_init", "skip_augs", "randomize_class", "clip_denoised", "clamp_grad", "fuzzy_prompt",
              "use_secondary_model", "ViTB32", "ViTB16", "ViTL14", "RN101", "RN50", "RN50x4", "RN50x16",
              "RN50x64", "key_frames", "video_init_seed_continuity", "turbo_mode"}

# DD settings that the report never holds (Q18): DD defaults, listed as assumed.
NOT_IN_REPORT: tuple[str, ...] = (
    "run.n_batches", "run.display_rate", "run.resume_run", "run.run_to_resume", "run.resume_from_frame",
    "run.retain_overwritten_frames", "models.use_checkpoint", "models.check_model_SHA",
    "animation.animation_mode", "vr.vr_mode", "vr.vr_eye_angle", "vr.vr_ipd",
    "saving.intermediate_saves", "saving.intermediates_in_subfolder",
    "video.skip_video_for_run_all", "video.init_frame", "video.last_frame", "video.fps",
)

DD52_DIFFUSION_MODELS = ("512x512_diffusion_uncond_finetune_008100", "256x256_diffusion_uncond")


def section_classes() -> list[tuple[str, type]]:
    """(section name, model class) for JobSpec's sections, in the spec's order."""
    out = []
    for name, info in JobSpec.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            out.append((name, ann))
    return out


def dd_default(section: str, name: str) -> Any:
    """DD's default for a spec field: the spec models' defaults are DD's."""
    cls = dict(section_classes())[section]
    return cls.model_fields[name].get_default(call_default_factory=True)

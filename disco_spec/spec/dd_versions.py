"""Which Disco Diffusion version wrote a settings report: the key fingerprints and :func:`detect_version`.

Tables of the keys that DD versions after 5.2 added (5.3 symmetry and ViT-L/14@336px, 5.4 video_init_*
overrides and optical-flow warp, 5.5 OpenCLIP models) and the LDSR keys that early 5.1 still had
(5.2's own keys: disco.py:1430 (save_settings)); :func:`detect_version` reads them off a report, and the small helpers
here turn a detected version into the checks and notes the importer uses. Standard library only.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LATER_CLIP_MODELS", "LDSR_KEYS", "OPENCLIP_KEYS", "V53_KEYS", "V54_KEYS", "V54_VIDEO_OVERRIDES", "detect_version",
    "is_pre51", "is_pre53", "ldsr_note", "version_note",
]

# Version fingerprints: the keys each version's report adds or drops.
V53_KEYS = ("ViTL14_336px", "use_horizontal_symmetry", "use_vertical_symmetry", "transformation_percent")
V54_KEYS = (
    "video_init_steps", "video_init_clip_guidance_scale", "video_init_tv_scale", "video_init_range_scale",
    "video_init_sat_scale", "video_init_cutn_batches", "video_init_skip_steps", "video_init_frames_scale",
    "video_init_frames_skip_steps", "video_init_flow_warp", "video_init_flow_blend",
    "video_init_check_consistency", "video_init_blend_mode",
)
# In Video Input mode 5.4+ renders with these instead of the main settings (their own code says so).
V54_VIDEO_OVERRIDES = {
    "video_init_steps": "steps", "video_init_clip_guidance_scale": "clip_guidance_scale",
    "video_init_tv_scale": "tv_scale", "video_init_range_scale": "range_scale", "video_init_sat_scale": "sat_scale",
    "video_init_cutn_batches": "cutn_batches", "video_init_skip_steps": "skip_steps",
    "video_init_frames_scale": "frames_scale", "video_init_frames_skip_steps": "frames_skip_steps",
}
# CLIP checkboxes added after 5.2 -> open_clip (architecture, pretrained tag), as DD 5.3/5.5 load them.
LATER_CLIP_MODELS: dict[str, tuple[str, str]] = {
    "ViTL14_336px": ("ViT-L-14-336", "openai"),  # 5.3: OpenAI CLIP 'ViT-L/14@336px'
    "ViTB32_laion2b_e16": ("ViT-B-32", "laion2b_e16"),
    "ViTB32_laion400m_e31": ("ViT-B-32", "laion400m_e31"),
    "ViTB32_laion400m_32": ("ViT-B-32", "laion400m_e32"),  # DD's key drops the 'e'; the tag is e32
    "ViTB32quickgelu_laion400m_e31": ("ViT-B-32-quickgelu", "laion400m_e31"),
    "ViTB32quickgelu_laion400m_e32": ("ViT-B-32-quickgelu", "laion400m_e32"),
    "ViTB16_laion400m_e31": ("ViT-B-16", "laion400m_e31"),
    "ViTB16_laion400m_e32": ("ViT-B-16", "laion400m_e32"),
    "RN50_yffcc15m": ("RN50", "yfcc15m"),  # DD's key misspells yfcc
    "RN50_cc12m": ("RN50", "cc12m"),
    "RN50_quickgelu_yfcc15m": ("RN50-quickgelu", "yfcc15m"),
    "RN50_quickgelu_cc12m": ("RN50-quickgelu", "cc12m"),
    "RN101_yfcc15m": ("RN101", "yfcc15m"),
    "RN101_quickgelu_yfcc15m": ("RN101-quickgelu", "yfcc15m"),
}
OPENCLIP_KEYS = tuple(k for k in LATER_CLIP_MODELS if k != "ViTL14_336px")
LDSR_KEYS = ("sharpen_preset", "keep_unsharp")  # ≤ early 5.1 (LDSR sharpening, gone in 5.2)


# Fewer of the 66 keys of a 5.2 report than this, and no key a version added, cannot tell a pre-5.1
# report (which lacks diffusion_sampling_mode) from a partial settings file: "version unknown".
FULL_REPORT_KEYS = 50
VERSION_UNKNOWN = "unknown"


def detect_version(report: dict[str, Any]) -> str:
    """Which DD version wrote a report, from the keys it holds (the fingerprints above); absent keys prove
    nothing in a partial file, so a version is read only from keys that are present."""
    from .dd_key_map import REPORT_KEYS_52

    keys = set(report)
    if keys & set(OPENCLIP_KEYS) or isinstance(report.get("cut_ic_pow"), str):
        return ">=5.5"
    if keys & set(V54_KEYS):
        return ">=5.4"
    if keys & set(V53_KEYS):
        return ">=5.3"
    if "turbo_frame_blend" in keys:
        return "5.1 (early, turbo_frame_blend)"
    if "diffusion_sampling_mode" not in keys and len(keys & set(REPORT_KEYS_52)) < FULL_REPORT_KEYS:
        return VERSION_UNKNOWN
    if "diffusion_sampling_mode" not in keys:
        # 5.0 introduced 3D; a report with no 3D settings predates it.
        has_3d = keys & {"translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z"}
        return "5.0" if has_3d else "<=5.0 (no 3D settings)"
    if keys & set(LDSR_KEYS):
        return "5.1 (early, sharpen_preset)"  # LDSR removed on 2022-04-04, days after 5.1
    return "5.1-5.2"


def is_pre51(version: str) -> bool:
    return version.startswith("5.0") or version.startswith("<=5.0")


def is_pre53(version: str) -> bool:
    return not version.startswith(">=")


def version_note(version: str) -> str:
    notes = {
        "5.1-5.2": "5.1 (from April 2022) and 5.2 write the same 66 keys",
        "5.0": "no diffusion_sampling_mode: written before 5.1 (v5.0 or a March-2022 build)",
        "<=5.0 (no 3D settings)": "no diffusion_sampling_mode and no 3D settings: written before 5.0's 3D mode",
        "5.1 (early, turbo_frame_blend)": "turbo_frame_blend: the first 5.1 build (2022-03-30)",
        "5.1 (early, sharpen_preset)": "LDSR keys with diffusion_sampling_mode: 5.1 before 2022-04-04",
        ">=5.3": "symmetry / ViT-L/14@336px keys",
        ">=5.4": "video_init_* warp keys",
        ">=5.5": "OpenCLIP keys or a string cut_ic_pow",
        VERSION_UNKNOWN: "too few of DD's keys to tell; no version-dependent conversion is made (pass "
                         "--dd-version to say which DD wrote it)",
    }
    if version == VERSION_UNKNOWN:
        return f"DD version unknown ({notes[version]})"
    return f"report written by DD {version} ({notes.get(version, 'given by the caller')})"


def ldsr_note(key: str, value: Any) -> str:
    if key == "sharpen_preset" and value not in ("Off", None, False):
        return (f"sharpen_preset = {value!r} (LDSR super-resolution, 5.1 and earlier) ignored: DD's stills were "
                "sharpened after sampling; the spec renders the unsharpened image")
    return f"{key} = {value!r} (LDSR sharpening, 5.1 and earlier) ignored: removed before 5.2"

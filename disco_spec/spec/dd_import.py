"""Import a Disco Diffusion settings report (`{batch_name}({batchNum})_settings.txt`) as a job spec.

DD writes the report (JSON) next to its images (disco.py:1430 (save_settings)). It holds 66 notebook settings in
5.2, named exactly like the spec's fields, so most keys map one to one onto a spec section. What the
report lacks (animation mode, n_batches, display rate, saves, VR, video cell, ...) is filled from
DD's defaults or a documented heuristic, and every such spec path is listed in `assumed`. Keys from
other DD versions are recognised by their fingerprints (spec/dd_versions.py): some are converted (pre-5.1
radians, 5.5 OpenCLIP models, 5.4 Video Input overrides), the rest are named in a warning. No report
key is dropped silently.

Standard library + pydantic + tomli-w only (no torch), like the rest of `disco_spec.spec`.

This module is the import surface and the importer's driver: it runs the steps in order, handles
keys from other DD versions, and assembles and validates the document. The other jobs live in
`dd_report_file` (reading the file and its name), `dd_versions` (version fingerprints),
`dd_key_map` (the 5.2 key tables and defaults), `dd_values` (mapping and converting values),
`dd_heuristics` (animation_mode / n_batches), `dd_toml` (TOML output) and `dd_state` (the state the
steps share, and `ImportResult`); the public names are re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import SpecError
from .dd_heuristics import ANIMATION_MODES, _ModeHeuristics
from .dd_key_map import (
    DD52_DIFFUSION_MODELS,
    NOT_IN_REPORT,
    REPORT_KEY_MAP,
    REPORT_KEYS_52,
    _SECTION_OF,
    _default,
    _section_classes,
)
from .dd_report_file import _parse_file_name, _read_report
from .dd_state import ImportResult
from .dd_toml import report_to_toml
from .dd_values import _ValueMapping
from .dd_versions import (
    LATER_CLIP_MODELS,
    LDSR_KEYS,
    OPENCLIP_KEYS,
    V53_KEYS,
    V54_KEYS,
    V54_VIDEO_OVERRIDES,
    _is_pre51,
    _is_pre53,
    _ldsr_note,
    _version_note,
    detect_version,
)
from .load import validate_document
from .models import SCHEMA_VERSION, JobSpec

__all__ = ["ImportResult", "import_dd_report", "report_to_toml", "REPORT_KEYS_52", "REPORT_KEY_MAP", "detect_version"]
# Also importable from here, as before the split (tables the tests and callers read):
__all__ += ["ANIMATION_MODES", "DD52_DIFFUSION_MODELS", "NOT_IN_REPORT", "LATER_CLIP_MODELS", "LDSR_KEYS",
            "OPENCLIP_KEYS", "V53_KEYS", "V54_KEYS", "V54_VIDEO_OVERRIDES"]


def import_dd_report(path: str | Path, *, animation_mode: str | None = None) -> ImportResult:
    """Read a DD settings report and return a validated spec document with its provenance."""
    path = Path(path)
    warnings: list[str] = []
    report = _read_report(path, warnings)
    batch_name, batch_num, separator = _parse_file_name(path, warnings)
    version = detect_version(report)
    imp = _Importer(path, report, batch_name, batch_num, separator, version, warnings)
    imp.run(animation_mode)
    return imp.result()


class _Importer(_ValueMapping, _ModeHeuristics):
    """Builds the spec document from one report (state and helpers in `_ImportState`)."""

    # -- steps ------------------------------------------------------------------------------------

    def run(self, animation_mode: str | None) -> None:
        self.warn(_version_note(self.version))
        self.set("run.batch_name", self.batch_name)
        self.map_52_keys()
        self.handle_sampler()
        self.handle_rotations()
        self.handle_later_keys()
        self.choose_animation_mode(animation_mode)
        self.choose_n_batches()
        self.fill_not_in_report()
        self.version_specific_notes()

    def handle_later_keys(self) -> None:
        """Keys from other DD versions: convert what has an equivalent, name the rest in a warning."""
        r = self.report
        known = set(REPORT_KEYS_52)
        off = [key for key in LATER_CLIP_MODELS if key in r and self.later_clip(key, r[key]) is False]
        if off:
            self.warn("CLIP models added after 5.2 are off in the report, nothing to map: " + ", ".join(off))
        self.symmetry_keys()
        if "turbo_frame_blend" in r:
            self.warn(f"turbo_frame_blend = {r['turbo_frame_blend']!r} (early 5.1) ignored: 5.2 always blends "
                      "turbo frames")
        if "turbo_blend" in r:
            self.warn(f"turbo_blend = {r['turbo_blend']!r} ignored: a deprecated setting DD 5.2 does not have")
        for key in LDSR_KEYS:
            if key in r:
                self.warn(_ldsr_note(key, r[key]))
        handled = known | set(LATER_CLIP_MODELS) | set(V53_KEYS) | set(V54_KEYS) | {
            "turbo_frame_blend", "turbo_blend", *LDSR_KEYS}
        unknown = [k for k in r if k not in handled]
        if unknown:
            self.warn("report keys not known to DD 5.0-5.7, ignored: " + ", ".join(unknown))

    def later_clip(self, key: str, value: Any) -> bool:
        """A 5.3/5.5 CLIP checkbox: when on, the same open_clip model as an extra model. Returns the value."""
        value = self.coerce("ViTB32", value)  # same bool rules as DD's own checkboxes
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false (got {value!r})")
        if value:
            arch, pretrained = LATER_CLIP_MODELS[key]
            since = "5.3" if key == "ViTL14_336px" else "5.5"
            self.extra_clip.append({"arch": arch, "pretrained": pretrained})
            self.warn(f"{key} = true ({since}+) mapped to models.extra_clip_models "
                      f"{{arch = {arch!r}, pretrained = {pretrained!r}}} (loaded after DD's eight models; the "
                      "order only affects float summation)")
        return value

    def symmetry_keys(self) -> None:
        r = self.report
        on = [k for k in ("use_horizontal_symmetry", "use_vertical_symmetry") if k in r and r[k]]
        off = [k for k in ("use_horizontal_symmetry", "use_vertical_symmetry") if k in r and not r[k]]
        if on:
            self.warn(f"{', '.join(on)} = true (5.3+) not supported: the spec has no symmetry; the render will "
                      f"differ from DD's (transformation_percent = {r.get('transformation_percent')!r} unused)")
        if off:
            self.warn(f"{', '.join(off)} = false (5.3+): symmetry off, nothing to map")
        if "transformation_percent" in r and not on:
            self.warn(f"transformation_percent = {r['transformation_percent']!r} (5.3+) ignored: only used with "
                      "symmetry, which is off")

    def fill_not_in_report(self) -> None:
        for dotted in NOT_IN_REPORT:
            if self.get(dotted) is None:
                section, name = dotted.split(".", 1)
                self.set(dotted, _default(section, name))
            if dotted != "animation.animation_mode" or not self.mode_from_user:
                self.assume(dotted)
        if self.extra_clip:
            self.set("models.extra_clip_models", self.extra_clip)

    def version_specific_notes(self) -> None:
        r, mode = self.report, self.get("animation.animation_mode")
        if _is_pre51(self.version) and "video_init_seed_continuity" not in r:
            # 5.1 added the option "to make init video animations more continuous": before it the seed
            # changed every frame, which is what continuity = false does.
            self.set("video_input.video_init_seed_continuity", False)
            self.assume("video_input.video_init_seed_continuity")
            self.warn("pre-5.1 report: video_init_seed_continuity did not exist (the seed changed every frame); "
                      "set to false")
        self.video_overrides(mode)
        if mode != "None" and _is_pre53(self.version):
            fs, ins = self.get("animation.frames_scale"), self.get("init.init_scale")
            if fs is not None and fs != ins:
                self.warn(f"DD builds before 2022-05-26 (fix PR #86) used init_scale ({ins!r}) instead of "
                          f"frames_scale ({fs!r}) for animation frames; the spec uses frames_scale as fixed DD does")
        model = self.get("models.diffusion_model")
        if isinstance(model, str) and model not in DD52_DIFFUSION_MODELS:
            self.warn(f"diffusion_model {model!r} is not one of DD 5.2's models; disco-spec's registry may not "
                      "have it: give a custom checkpoint {path, sha256, config} instead")
        init = self.get("init.init_image")
        if isinstance(init, str) and init.strip() not in ("", "none", "None", "NONE"):
            self.warn(f"init_image {init!r} is a path on the machine that ran DD: make sure it exists here "
                      "(relative paths resolve against the spec's folder)")
        if mode == "Video Input":
            self.warn(f"video_init_path {self.get('video_input.video_init_path')!r} is a path on the machine "
                      "that ran DD: point it at your copy of the video")
        if r.get("key_frames") is False:
            self.warn("key_frames = false: DD 5.2 crashes with it unless an earlier run left its key-frame "
                      "series behind (quirk Q4), so the motion DD rendered may not be the numbers in the report")

    def video_overrides(self, mode: str) -> None:
        """5.4+ Video Input renders with video_init_* instead of the main settings."""
        r = self.report
        present = [k for k in V54_KEYS if k in r]
        if not present:
            return
        overrides = [k for k in present if k in V54_VIDEO_OVERRIDES]
        flow = [k for k in present if k not in V54_VIDEO_OVERRIDES]
        if mode == "Video Input":
            for key in overrides:
                target = V54_VIDEO_OVERRIDES[key]
                self.set(f"{_SECTION_OF[target]}.{target}", self.coerce(target, r[key]))
            if overrides:
                self.warn("5.4+ Video Input renders with the video_init_* settings: mapped "
                          + ", ".join(f"{k} -> {V54_VIDEO_OVERRIDES[k]}" for k in overrides))
        elif overrides:
            self.warn("5.4+ video_init_* settings ignored (used only in Video Input mode): " + ", ".join(overrides))
        if flow:
            detail = ("; video_init_flow_warp is on, so a Video Input render will differ from DD's"
                      if r.get("video_init_flow_warp") is True else "")
            self.warn("5.4+ optical-flow warp settings not supported, ignored: " + ", ".join(flow) + detail)

    # -- result ------------------------------------------------------------------------------------

    def result(self) -> ImportResult:
        document = self.document()
        self.validate(document)  # the document itself is returned: sparse and in the spec's order
        return ImportResult(document=document, detected_version=self.version,
                            assumed=list(self.assumed), warnings=list(self.warnings))

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "description": f"Imported from the Disco Diffusion settings report {self.path.name}",
        }
        provenance: dict[str, Any] = {"source": self.path.name}
        if self.batch_num is not None:
            provenance["batch_num"] = self.batch_num
        provenance.update(dd_version=self.version, assumed=list(self.assumed), warnings=list(self.warnings))
        doc["imported_from"] = provenance
        for section, cls in _section_classes():
            fields = {name: self.values[(section, name)] for name in cls.model_fields if (section, name) in self.values}
            if fields:
                doc[section] = fields
        return doc

    def validate(self, document: dict[str, Any]) -> JobSpec:
        try:
            return validate_document(document)
        except SpecError as exc:
            problems = [(self.report_key_for(loc), f"{msg} (spec field {loc})") for loc, msg in exc.problems]
            text = "; ".join(f"{key}: {msg}" for key, msg in problems)
            raise SpecError(f"{self.path.name}: values not valid for the spec: {text}", problems) from None

    def report_key_for(self, loc: str) -> str:
        """Which report key a spec path came from (longest matching prefix), for error messages."""
        back = {path: key for key, path in REPORT_KEY_MAP.items() if path}
        back.update({
            "diffusion.width_height": "width/height", "prompts": "text_prompts/image_prompts",
            "models": "ViTB32/ViTB16/ViTL14/RN101/RN50/RN50x4/RN50x16/RN50x64",
            "camera_3d": "near_plane/far_plane", "animation": "key_frames", "run.batch_name": "(file name)",
        })
        for path in sorted(back, key=len, reverse=True):
            if loc == path or loc.startswith(path + ".") or loc.startswith(path + "["):
                return back[path]
        return loc

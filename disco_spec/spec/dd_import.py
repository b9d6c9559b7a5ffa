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

import difflib
import re
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .dd_heuristics import ANIMATION_MODES, _ModeHeuristics
from .dd_key_map import (DD52_DIFFUSION_MODELS, NOT_IN_REPORT, REPORT_KEY_MAP, REPORT_KEYS_52, _SECTION_OF, _default,
                         _section_classes)
from .dd_report_file import _parse_file_name, _read_report
from .dd_state import ImportResult
from .dd_toml import report_to_toml
from .dd_values import _ValueMapping, _kf
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
    VERSION_UNKNOWN,
    detect_version,
)
from .load import validate_document
from .models import SCHEMA_VERSION, JobSpec

__all__ = ["ImportResult", "import_dd_report", "report_to_toml", "REPORT_KEYS_52", "REPORT_KEY_MAP", "detect_version"]
# Also importable from here, as before the split (tables the tests and callers read):
__all__ += ["ANIMATION_MODES", "DD52_DIFFUSION_MODELS", "NOT_IN_REPORT", "LATER_CLIP_MODELS", "LDSR_KEYS",
            "OPENCLIP_KEYS", "V53_KEYS", "V54_KEYS", "V54_VIDEO_OVERRIDES"]


DD_VERSIONS = ("5.0", "5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7")


def import_dd_report(path: str | Path, *, animation_mode: str | None = None, batch_name: str | None = None,
                     dd_version: str | None = None) -> ImportResult:
    """Read a DD-family settings file and return a validated spec document with its provenance.

    A SpecError raised here carries the warnings gathered so far in its `warnings` attribute, so a
    caller can show them with the error."""
    path = Path(path)
    warnings: list[str] = []
    try:
        report, family = _read_report(path, warnings)
        in_file = report.get("batch_name")  # the file name gives the batch only when nothing else does
        name_used = batch_name is None and not (isinstance(in_file, str) and in_file.strip())
        file_batch, batch_num, separator = _parse_file_name(path, warnings, name_used)
        version = _version(report, dd_version, warnings)
        name = _batch_name(batch_name, report.get("batch_name"), file_batch, warnings)
        imp = _Importer(path, report, name, batch_num, separator, version, warnings)
        imp.family = family
        imp.run(animation_mode)
        return imp.result()
    except SpecError as exc:
        exc.warnings = list(warnings)  # type: ignore[attr-defined]
        raise


def _version(report: dict[str, Any], given: str | None, warnings: list[str]) -> str:
    if given is None:
        return detect_version(report)
    if given not in DD_VERSIONS:
        raise SpecError(f"--dd-version: {given!r}", [("--dd-version", f"must be one of {', '.join(DD_VERSIONS)} "
                                                                       f"(got {given!r})")])
    found = detect_version(report)
    warnings.append(f"DD version {given} given by the caller (the file's keys say {found})")
    return "5.0" if given == "5.0" else ("5.1-5.2" if given in ("5.1", "5.2") else f">={given}")


_ILLEGAL_IN_NAME = re.compile(r"[/\\:\x00-\x1f\x7f]+")


def _batch_name(given: str | None, in_file: Any, from_file_name: str, warnings: list[str]) -> str:
    """--batch-name, else the file's own batch_name, else the file name's; an illegal one cleaned with a warning."""
    if given is not None:
        return given  # the user's own words: validation names any problem
    if isinstance(in_file, str) and in_file.strip():
        name, source = in_file, "the file's batch_name"
    else:
        name, source = from_file_name, "the file name"
    cleaned = _ILLEGAL_IN_NAME.sub("_", name).strip().strip(".").strip() or "TimeToDisco"
    if cleaned != name:
        warnings.append(f"batch_name {name!r} from {source} is not a legal folder name: cleaned to {cleaned!r} "
                        "(pass --batch-name to choose another)")
    return cleaned


class _Importer(_ValueMapping, _ModeHeuristics):
    """Builds the spec document from one report (state and helpers in `_ImportState`)."""

    # -- steps ------------------------------------------------------------------------------------

    family = "Disco Diffusion"

    def run(self, animation_mode: str | None) -> None:
        if self.family != "Disco Diffusion":
            self.warn(f"a {self.family} settings file: read with DD's names ({self.family}'s own settings named below)")
        self.warn(_version_note(self.version))
        self.drop_nulls()
        self.set("run.batch_name", self.batch_name)
        self.map_52_keys()
        self.map_notebook_keys()
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
        # 5.3+ symmetry keys carry the spec's [symmetry] names: map_notebook_keys reads them as written
        if "turbo_frame_blend" in r:
            self.warn(f"turbo_frame_blend = {r['turbo_frame_blend']!r} (early 5.1) ignored: 5.2 always blends "
                      "turbo frames")
        if "turbo_blend" in r:
            self.warn(f"turbo_blend = {r['turbo_blend']!r} ignored: a deprecated setting DD 5.2 does not have")
        for key in LDSR_KEYS:
            if key in r:
                self.warn(_ldsr_note(key, r[key]))
        handled = known | set(LATER_CLIP_MODELS) | set(V53_KEYS) | set(V54_KEYS) | set(self.notebook_keys) | {
            "turbo_frame_blend", "turbo_blend", *LDSR_KEYS, *_NOTEBOOK_ONLY, "extra_clip_models"}
        unknown = [k for k in r if k not in handled]
        if unknown:
            names = sorted(handled | set(_spec_field_sections()))
            parts = []
            for key in unknown:
                close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.75)
                parts.append(f"{key} (did you mean {close[0]!r}?)" if close else str(key))
            self.warn("keys not known to DD 5.0-5.7 or its notebook, ignored: " + ", ".join(parts))

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

    def fill_not_in_report(self) -> None:
        for dotted in NOT_IN_REPORT:
            if dotted in self.from_file:
                continue  # the file says it
            if self.get(dotted) is None:
                section, name = dotted.split(".", 1)
                self.set(dotted, _default(section, name))
            if dotted != "animation.animation_mode" or not self.mode_from_user:
                self.assume(dotted)
        if isinstance(self.report.get("extra_clip_models"), list):  # discoart's other CLIP models
            self.extra_clip = [*self.report["extra_clip_models"], *self.extra_clip]
        if self.extra_clip:
            self.set("models.extra_clip_models", self.extra_clip)

    def drop_nulls(self) -> None:
        """null (None) means "not set": the key is read as absent (DD never reads, e.g., a still's motion)."""
        fields = _spec_field_sections()
        # A null where DD's own default is None (init_image, ...) is that value; elsewhere it means "not set".
        nulls = [k for k, v in self.report.items() if v is None and not (
            k in fields and _default(fields[k], k) is None)]
        if nulls:
            self.report = {k: v for k, v in self.report.items() if v is not None}
            self.warn("null values read as not set: " + ", ".join(map(str, nulls)))

    def map_notebook_keys(self) -> None:
        """DD's notebook variables a settings file may carry besides the report's keys (same names as the spec's)."""
        r, fields = self.report, _spec_field_sections()
        if "width" not in r and "height" not in r:
            wh_key = next((k for k in _WIDTH_HEIGHT_KEYS(self.report) if k in r), None)
            if wh_key is not None:
                self.set("diffusion.width_height", r[wh_key])
                self.from_file.add("diffusion.width_height")
                self.assumed = [a for a in self.assumed if a != "diffusion.width_height"]
                self.warnings[:] = [w for w in self.warnings if not w.startswith(("report key 'width' missing",
                                                                                    "report key 'height' missing"))]
        elif "width_height" in r and list(r["width_height"] or []) != self.get("diffusion.width_height"):
            self.warn(f"width_height = {r['width_height']!r} and width/height = {self.get('diffusion.width_height')!r} "
                      "differ: width/height (what DD rendered) used")
        if "set_seed" in r and "seed" not in r:
            seed = r["set_seed"]
            if isinstance(seed, str) and seed.strip().isdigit():
                seed = int(seed)  # DD's set_seed field is a string: 'random_seed' or digits
            self.set("run.set_seed", seed)
            self.from_file.add("run.set_seed")
            self.assumed = [a for a in self.assumed if a != "run.set_seed"]
            self.warnings[:] = [w for w in self.warnings if not w.startswith("no 'seed' in the report")]
        for key, value in r.items():
            if key in REPORT_KEY_MAP or key in _NOTEBOOK_ONLY or key not in fields or key == "extra_clip_models":
                continue
            dotted = f"{fields[key]}.{key}"
            self.set(dotted, self.coerce(key, value))
            self.from_file.add(dotted)
            self.notebook_keys.append(key)
        mode = self.get("animation.animation_mode")
        if "animation.animation_mode" in self.from_file and mode not in ANIMATION_MODES:
            raise self.fail("animation_mode", f"must be one of {', '.join(ANIMATION_MODES)} (got {mode!r})")
        model = self.get("models.diffusion_model")
        if isinstance(model, str) and model.strip().lower() == "custom":
            path = r.get("custom_path")
            where = f" (the file's custom_path: {path!r})" if path else ""
            raise self.fail("diffusion_model", f"'custom' is DD's own checkpoint{where}: a spec needs the file pinned; "
                                               "give {path, sha256, config} as models.diffusion_model (config: the "
                                               "registry entry whose architecture it has)")

    def version_specific_notes(self) -> None:
        r, mode = self.report, self.get("animation.animation_mode")
        if _is_pre51(self.version) and "video_init_seed_continuity" not in r:
            # 5.1 added the option "to make init video animations more continuous": before it the seed
            # changed every frame, which is what continuity = false does.
            self.set("video_input.video_init_seed_continuity", False)
            self.assume("video_input.video_init_seed_continuity")
            self.warn("pre-5.1 report: video_init_seed_continuity did not exist (the seed changed every frame); "
                      "set to false")
        self.refuse_flow_warp(mode)
        self.video_overrides(mode)
        if self.version == VERSION_UNKNOWN and any(
                _kf(self.get(f"animation.{k}")) not in (None, {0: 0.0}) for k in ("rotation_3d_x", "rotation_3d_y",
                                                                                  "rotation_3d_z")):
            self.warn("3D rotations read as degrees per frame (DD 5.1+): the DD version is unknown; if the file is "
                      "from DD 5.0, whose rotations were radians, import it with --dd-version 5.0")
        if mode != "None" and _is_pre53(self.version):
            fs, ins = self.get("animation.frames_scale"), self.get("init.init_scale")
            if fs is not None and fs != ins:
                self.warn(f"DD builds before 2022-05-26 (fix PR #86) used init_scale ({ins!r}) instead of "
                          f"frames_scale ({fs!r}) for animation frames; the spec uses frames_scale as fixed DD does")
        model = self.get("models.diffusion_model")
        if isinstance(model, str) and model not in DD52_DIFFUSION_MODELS + DD57_DIFFUSION_MODELS:
            self.warn(f"diffusion_model {model!r} is not one DD 5.2-5.7 offers; `validate` checks it against "
                      "the registry (else give a custom checkpoint {path, sha256, config})")
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

    def refuse_flow_warp(self, mode: str) -> None:
        if mode == "Video Input" and self.report.get("video_init_flow_warp") is True:
            msg = ("= true (5.4+) in Video Input mode: disco-spec does not render DD's optical-flow warp, so the "
                   "frames would differ from DD's; set it to false in the file to import the rest")
            raise SpecError(f"{self.path.name}: video_init_flow_warp {msg}", [("video_init_flow_warp", msg)])

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
        back.update({f"{_spec_field_sections()[key]}.{key}": key for key in self.notebook_keys})  # as the file names it
        for path in sorted(back, key=len, reverse=True):
            if loc == path or loc.startswith(path + ".") or loc.startswith(path + "["):
                return back[path]
        return loc


# DD's later diffusion models (5.4-5.7's diffusion_model choices, less 'custom').
DD57_DIFFUSION_MODELS = ("portrait_generator_v001", "pixelartdiffusion_expanded", "pixel_art_diffusion_hard_256",
                         "pixel_art_diffusion_soft_256", "pixelartdiffusion4k", "watercolordiffusion_2",
                         "watercolordiffusion", "PulpSciFiDiffusion")
# Notebook variables that are no spec field but are DD's own (read, used above, or meaningless for a spec).
_NOTEBOOK_ONLY = ("width_height", "width_height_for_512x512_models", "width_height_for_256x256_models", "seed",
                  "set_seed", "batch_name", "custom_path", "useCPU", "batchNum", "start_frame", "batch_size",
                  "side_x", "side_y", "cutn", "model_path", "diffusion_steps")
_256_MODELS = ("256x256_diffusion_uncond", "pixelartdiffusion_expanded", "pixel_art_diffusion_hard_256",
               "pixel_art_diffusion_soft_256", "pixelartdiffusion4k", "PulpSciFiDiffusion", "watercolordiffusion",
               "watercolordiffusion_2")


def _WIDTH_HEIGHT_KEYS(report: dict[str, Any]) -> tuple[str, ...]:
    """Which notebook size variable DD used: DD 5.7 picks the 256 one for its 256px models."""
    if report.get("diffusion_model") in _256_MODELS:
        return ("width_height", "width_height_for_256x256_models", "width_height_for_512x512_models")
    return ("width_height", "width_height_for_512x512_models", "width_height_for_256x256_models")


def _spec_field_sections() -> dict[str, str]:
    """Every spec field name -> its section (the spec's fields carry DD's names)."""
    out: dict[str, str] = {}
    for section, cls in _section_classes():
        for name in cls.model_fields:
            out.setdefault(name, section)
    return out

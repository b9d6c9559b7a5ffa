"""DD settings report -> spec (disco_spec.spec.dd_import), checked against DD's report (disco.py:1430 (save_settings)).

The samples in tests/data/dd_reports/ are hand-written in DD's format (JSON, indent 4, keys in DD's
order): a full 5.2 report (66 keys), a pre-5.1 report (radians, sampling_mode collision, LDSR keys,
`{batch_name}-{batchNum}` naming), a 5.5 report (symmetry, video_init_*, OpenCLIP, string cut_ic_pow)
and a cp1252-encoded 5.2 report. Variants are written to tmp_path from the 5.2 sample.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

import pytest

from disco_spec.errors import SpecError
from disco_spec.plan.resolve import diffusion_steps_for, floor64, resolve_plan
from disco_spec.spec import schedules
from disco_spec.spec.dd_import import (
    REPORT_KEY_MAP,
    REPORT_KEYS_52,
    V54_KEYS,
    detect_version,
    import_dd_report,
    report_to_toml,
)
from disco_spec.spec.load import spec_to_document, validate_document
from disco_spec.spec.models import MOTION_FIELDS, keyframe_values

DATA = Path(__file__).parent / "data" / "dd_reports"
R52 = DATA / "TimeToDisco(3)_settings.txt"
PRE51 = DATA / "Canyon3D-2_settings.txt"
R55 = DATA / "Pixelscape(0)_settings.txt"
CP1252 = DATA / "Patisserie(1)_settings.txt"
SAMPLES = [R52, PRE51, R55, CP1252]


def load_report(path: Path) -> dict:
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return json.loads(raw.decode("cp1252"))


def write_report(folder: Path, name: str = "TimeToDisco(3)_settings.txt", drop=(), **changes) -> Path:
    """A variant of the 5.2 sample, written like DD writes it."""
    report = {k: v for k, v in load_report(R52).items() if k not in drop}
    report.update(changes)
    path = folder / name
    path.write_text(json.dumps(report, ensure_ascii=False, indent=4), encoding="utf-8")
    return path


def spec_of(result):
    return validate_document(result.document)


def named_in_warnings(key: str, warnings: list[str]) -> bool:
    return any(re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", w) for w in warnings)


# ---------------------------------------------------------------------------------------------
# The 5.2 report
# ---------------------------------------------------------------------------------------------


def test_sample_is_a_full_52_report_in_file_order():
    assert list(load_report(R52)) == list(REPORT_KEYS_52)
    assert len(REPORT_KEYS_52) == 66


def test_52_import_validates_and_names_the_run():
    result = import_dd_report(R52)
    spec = spec_of(result)
    assert result.detected_version == "5.1-5.2"
    assert spec.run.batch_name == "TimeToDisco"
    assert spec.run.set_seed == 1436827437
    prov = result.document["imported_from"]
    assert prov["source"] == R52.name and prov["batch_num"] == 3 and prov["dd_version"] == "5.1-5.2"
    assert prov["assumed"] == result.assumed and prov["warnings"] == result.warnings


def test_52_every_key_lands_in_the_field_of_the_same_name():
    report = load_report(R52)
    spec = spec_of(import_dd_report(R52))
    for key, path in REPORT_KEY_MAP.items():
        if path is None:
            continue
        m = re.fullmatch(r"(\w+)\.(\w+)(?:\[(\d)\])?", path)
        section, name, index = m.group(1), m.group(2), m.group(3)
        value = getattr(getattr(spec, section), name)
        if index is not None:
            value = value[int(index)]
        if key in ("text_prompts", "image_prompts"):
            assert spec.prompts.by_frame(key) == {int(k): v for k, v in report[key].items()}
            assert all(isinstance(k, str) for k in value)  # the spec's frame keys are strings
        else:
            assert value == report[key], key
            if key not in ("seed",) and path.endswith(key):
                assert name == key  # field names are DD's own


def test_52_plan_reproduces_the_report():
    report = load_report(R52)
    spec = spec_of(import_dd_report(R52, animation_mode="2D"))
    plan = resolve_plan(spec)
    max_frames = report["max_frames"]
    assert plan.n_items == max_frames
    # sizes, steps, seed, sampler
    assert (plan.width, plan.height) == (floor64(report["width"]), floor64(report["height"]))
    assert plan.requested_width_height == [report["width"], report["height"]]
    assert plan.steps == report["steps"]
    assert plan.diffusion_steps == report["diffusion_steps"] == diffusion_steps_for(report["steps"])
    assert plan.sampler == report["diffusion_sampling_mode"]
    assert plan.eta == report["eta"]
    assert plan.base_seed == report["seed"]
    assert [it.seed for it in plan.items[:3]] == [report["seed"] + f for f in range(3)]
    # guidance scales (not part of the plan; they come straight from the spec)
    for key in ("clip_guidance_scale", "tv_scale", "range_scale", "sat_scale", "clamp_max", "rand_mag"):
        assert getattr(spec.guidance, key) == report[key]
    # cut schedules: 1000 values each, equal to parsing the report's strings
    for key in ("cut_overview", "cut_innercut", "cut_icgray_p"):
        expected = schedules.parse_cut_schedule(report[key])
        assert len(getattr(plan, key)) == 1000 and getattr(plan, key) == expected
    assert plan.cut_ic_pow == report["cut_ic_pow"]
    # skips: frame 0 uses skip_steps, later frames floor(steps * 60%)
    assert plan.items[0].skip_steps == report["skip_steps"]
    assert plan.items[1].skip_steps == math.floor(report["steps"] * 0.6)
    # prompts per frame and their weights
    texts = {int(k): v for k, v in report["text_prompts"].items()}
    for frame in (0, 1, 99, 100, 150, max_frames - 1):
        item = plan.items[frame]
        expected = schedules.prompts_for_frame(texts, frame)
        assert [t.source for t in item.text_prompts] == expected
        weights = [schedules.parse_prompt(p)[1] for p in expected]
        assert [t.weight for t in item.text_prompts] == weights
        total = abs(sum(weights))
        assert [t.normalized_weight for t in item.text_prompts] == pytest.approx([w / total for w in weights])
    assert [t.weight for t in plan.items[0].text_prompts] == [1.0, 2.0, -1.0]
    assert [t.weight for t in plan.items[100].text_prompts] == [1.0, 5.0]
    # motion series = key-frame parse of the report's strings
    for key in MOTION_FIELDS:
        series = schedules.keyframe_series(schedules.parse_keyframes(report[key]), max_frames)
        for frame in (0, 5, 10, 11, 60, 119, 120, 150, 200, max_frames - 1):
            assert plan.items[frame].motion[key] == series[frame], (key, frame)
    assert plan.items[5].motion["zoom"] == pytest.approx(1.01)
    assert plan.items[30].motion["angle"] == pytest.approx(0.25)


def test_52_still_import_plans_stills():
    spec = spec_of(import_dd_report(R52))
    plan = resolve_plan(spec)
    assert plan.animation_mode == "None" and plan.n_items == 50
    assert {it.frame for it in plan.items} == {0}
    assert [t.source for t in plan.items[0].text_prompts] == load_report(R52)["text_prompts"]["0"]


def test_assumed_lists_fields_not_in_the_report():
    result = import_dd_report(R52)
    for path in ("animation.animation_mode", "run.n_batches", "run.display_rate", "saving.intermediate_saves",
                 "models.use_checkpoint", "vr.vr_mode", "video.fps"):
        assert path in result.assumed
    # nothing the report holds is listed as assumed
    assert not any(p.startswith(("guidance.", "cuts.", "prompts.", "init.")) for p in result.assumed)
    given = import_dd_report(R52, animation_mode="3D")
    assert "animation.animation_mode" not in given.assumed and "run.n_batches" in given.assumed
    assert spec_of(given).animation.animation_mode == "3D" and spec_of(given).run.n_batches == 1


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_no_report_key_is_dropped_silently(path):
    report = load_report(path)
    result = import_dd_report(path)
    read_into = {name for section in result.document.values() if isinstance(section, dict) for name in section}
    for key in report:  # mapped (a 5.2 key, or a later key with a spec field of its name) or named
        assert key in REPORT_KEY_MAP or key in read_into or named_in_warnings(key, result.warnings), key


def test_unknown_keys_are_named(tmp_path):
    result = import_dd_report(write_report(tmp_path, my_private_note="x", zoom_per_frame=1.02))
    assert named_in_warnings("my_private_note", result.warnings)
    assert named_in_warnings("zoom_per_frame", result.warnings)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_toml_round_trip(path):
    result = import_dd_report(path)
    text = report_to_toml(result)
    assert text.startswith("# Imported by `disco-spec import-dd`")
    parsed = tomllib.loads(text)
    a, b = validate_document(parsed), validate_document(result.document)
    assert a == b
    assert spec_to_document(a) == spec_to_document(b)
    # sections appear in the spec's order
    headers = [h for h in re.findall(r"^\[([\w.]+)\]", text, re.M) if "." not in h]
    order = ["imported_from", "run", "models", "diffusion", "guidance", "cuts", "init", "prompts", "animation",
             "camera_3d", "video_input", "turbo", "vr", "saving", "video", "symmetry", "engine"]
    assert headers == sorted(headers, key=order.index)


# ---------------------------------------------------------------------------------------------
# Fingerprints
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, version",
    [(R52, "5.1-5.2"), (PRE51, "5.0"), (R55, ">=5.5"), (CP1252, "5.1-5.2")],
    ids=lambda v: getattr(v, "name", v),
)
def test_fingerprint_of_each_sample(path, version):
    assert import_dd_report(path).detected_version == version


def test_fingerprint_table():
    base = load_report(R52)
    assert detect_version(base) == "5.1-5.2"
    assert detect_version({**base, "turbo_frame_blend": True}) == "5.1 (early, turbo_frame_blend)"
    assert detect_version({**base, "sharpen_preset": "Off"}) == "5.1 (early, sharpen_preset)"
    assert detect_version({**base, "use_vertical_symmetry": False}) == ">=5.3"
    assert detect_version({**base, "ViTL14_336px": False}) == ">=5.3"
    assert detect_version({**base, "video_init_flow_warp": True}) == ">=5.4"
    assert detect_version({**base, "cut_ic_pow": "[1]*1000"}) == ">=5.5"
    assert detect_version({**base, "RN50_cc12m": False}) == ">=5.5"
    no_sampler = {k: v for k, v in base.items() if k != "diffusion_sampling_mode"}
    assert detect_version(no_sampler) == "5.0"
    no_3d = {k: v for k, v in no_sampler.items() if not k.startswith(("rotation_3d", "translation_z"))}
    assert detect_version(no_3d).startswith("<=5.0")


# ---------------------------------------------------------------------------------------------
# Pre-5.1: radians, the sampling_mode collision, LDSR keys
# ---------------------------------------------------------------------------------------------


def test_pre51_rotations_converted_to_degrees():
    report = load_report(PRE51)
    result = import_dd_report(PRE51, animation_mode="3D")
    spec = spec_of(result)
    for key in ("rotation_3d_x", "rotation_3d_y", "rotation_3d_z"):
        radians = schedules.parse_keyframes(report[key])
        degrees = keyframe_values(getattr(spec.animation, key))
        assert list(degrees) == list(radians)
        for frame, value in radians.items():
            assert degrees[frame] == math.degrees(value)  # exact at the key frames
        series_rad = schedules.keyframe_series(radians, report["max_frames"])
        series_deg = schedules.keyframe_series(degrees, report["max_frames"])
        assert series_deg == pytest.approx([v * 180 / math.pi for v in series_rad], rel=1e-12, abs=1e-15)
    assert keyframe_values(spec.animation.rotation_3d_y)[50] == pytest.approx(1.0, rel=1e-5)
    assert keyframe_values(spec.animation.rotation_3d_x)[0] == pytest.approx(0.002 * 180 / math.pi)
    plan = resolve_plan(spec)
    assert plan.items[25].motion["rotation_3d_y"] == pytest.approx(math.degrees(0.0174533) / 2)
    assert any("radians" in w and "rotation_3d_y" in w for w in result.warnings)
    assert spec.animation.translation_z == report["translation_z"]  # not a rotation: untouched


def test_pre51_bicubic_sampling_mode_means_plms():
    result = import_dd_report(PRE51)
    spec = spec_of(result)
    assert spec.diffusion.diffusion_sampling_mode == "plms"
    assert spec.camera_3d.sampling_mode == "bicubic"
    assert "diffusion.diffusion_sampling_mode" in result.assumed
    note = next(w for w in result.warnings if "PLMS" in w)
    assert "v5.0" in note and "'ddim'" in note


@pytest.mark.parametrize("value, sampler", [("ddim", "ddim"), ("plms", "plms"), (None, "ddim")])
def test_pre51_sampler_variants(tmp_path, value, sampler):
    extra = {} if value is None else {"sampling_mode": value}
    path = write_report(tmp_path, drop=("diffusion_sampling_mode", "sampling_mode"), **extra)
    result = import_dd_report(path)
    spec = spec_of(result)
    assert result.detected_version == "5.0"
    assert spec.diffusion.diffusion_sampling_mode == sampler
    assert spec.camera_3d.sampling_mode == "bicubic"
    assert {"diffusion.diffusion_sampling_mode", "camera_3d.sampling_mode"} <= set(result.assumed)


def test_pre51_sampler_garbage_names_the_key(tmp_path):
    path = write_report(tmp_path, drop=("diffusion_sampling_mode",), sampling_mode="lanczos")
    with pytest.raises(SpecError) as exc:
        import_dd_report(path)
    assert exc.value.problems[0][0] == "sampling_mode"


def test_pre51_file_name_ldsr_and_missing_keys():
    result = import_dd_report(PRE51)
    spec = spec_of(result)
    assert spec.run.batch_name == "Canyon3D" and result.document["imported_from"]["batch_num"] == 2
    assert named_in_warnings("sharpen_preset", result.warnings) and named_in_warnings("keep_unsharp", result.warnings)
    # 5.1 added video_init_seed_continuity; before it the seed moved every frame
    assert spec.video_input.video_init_seed_continuity is False
    for path in ("video_input.video_init_seed_continuity", "turbo.turbo_mode", "turbo.turbo_steps"):
        assert path in result.assumed
    assert spec.diffusion.steps == 150 and diffusion_steps_for(150) == load_report(PRE51)["diffusion_steps"]


# ---------------------------------------------------------------------------------------------
# 5.3+ keys
# ---------------------------------------------------------------------------------------------


def test_55_mappings_and_warnings():
    result = import_dd_report(R55)
    spec = spec_of(result)
    assert [m.model_dump(exclude_none=True) for m in spec.models.extra_clip_models] == [
        {"arch": "ViT-B-32", "pretrained": "laion2b_e16"}
    ]
    assert spec.cuts.cut_ic_pow == 1
    assert spec.video_input.video_init_seed_continuity is False
    for key in (*V54_KEYS, "ViTL14_336px", "RN50_yffcc15m"):
        assert named_in_warnings(key, result.warnings), key
    # its 5.3 symmetry keys (off) are read into [symmetry] as written
    assert (spec.symmetry.use_horizontal_symmetry, spec.symmetry.use_vertical_symmetry) == (False, False)
    assert spec.symmetry.transformation_percent == load_report(R55)["transformation_percent"]
    assert spec.diffusion.steps == 250  # video_init_steps only applies in Video Input mode


def test_55_video_input_with_flow_warp_is_refused_by_name():
    with pytest.raises(SpecError) as ei:
        import_dd_report(R55, animation_mode="Video Input")
    assert ei.value.problems[0][0] == "video_init_flow_warp" and "does not render" in ei.value.problems[0][1]


def test_55_video_input_uses_video_init_settings(tmp_path):
    report = load_report(R55)
    report["video_init_flow_warp"] = False
    path = tmp_path / R55.name
    path.write_text(json.dumps(report), encoding="utf-8")
    spec = spec_of(import_dd_report(path, animation_mode="Video Input"))
    assert spec.diffusion.steps == report["video_init_steps"]
    assert spec.guidance.clip_guidance_scale == report["video_init_clip_guidance_scale"]
    assert spec.guidance.sat_scale == report["video_init_sat_scale"]
    assert spec.init.skip_steps == report["video_init_skip_steps"]
    assert spec.animation.frames_scale == report["video_init_frames_scale"]
    assert spec.animation.frames_skip_steps == report["video_init_frames_skip_steps"]


def test_55_varying_cut_ic_pow_is_kept_whole(tmp_path):
    result = import_dd_report(write_report(tmp_path, cut_ic_pow="[2]*300+[1]*700"))
    assert spec_of(result).cuts.cut_ic_pow == "[2]*300+[1]*700"
    assert result.detected_version == ">=5.5"
    assert not any("cut_ic_pow schedule" in w for w in result.warnings)  # was "using its first value 2"
    assert spec_of(import_dd_report(write_report(tmp_path, cut_ic_pow="1.5"))).cuts.cut_ic_pow == 1.5


def test_symmetry_on_is_imported_into_its_section(tmp_path):
    # was refused by name ("disco-spec does not render DD's symmetry"): now rendered as DD 5.7 renders it
    result = import_dd_report(write_report(tmp_path, use_horizontal_symmetry=True, use_vertical_symmetry=True,
                                           transformation_percent=[0.2, 0.5]))
    spec = spec_of(result)
    assert (spec.symmetry.use_horizontal_symmetry, spec.symmetry.use_vertical_symmetry) == (True, True)
    assert spec.symmetry.transformation_percent == [0.2, 0.5]
    assert tomllib.loads(report_to_toml(result))["symmetry"]["use_horizontal_symmetry"] is True


def test_symmetry_value_dd_would_not_read_is_refused_naming_the_key(tmp_path):
    with pytest.raises(SpecError) as ei:
        import_dd_report(write_report(tmp_path, use_horizontal_symmetry=True, transformation_percent=[1.5]))
    assert ei.value.problems[0][0].startswith("transformation_percent")


def test_early_51_keys(tmp_path):
    result = import_dd_report(write_report(tmp_path, turbo_frame_blend=True, turbo_blend=0.5))
    assert result.detected_version == "5.1 (early, turbo_frame_blend)"
    assert named_in_warnings("turbo_frame_blend", result.warnings)
    assert named_in_warnings("turbo_blend", result.warnings)
    spec_of(result)


# ---------------------------------------------------------------------------------------------
# Encoding, file names, errors
# ---------------------------------------------------------------------------------------------


def test_cp1252_report():
    with pytest.raises(UnicodeDecodeError):
        CP1252.read_bytes().decode("utf-8")
    result = import_dd_report(CP1252)
    spec = spec_of(result)
    prompts = spec.prompts.by_frame("text_prompts")[0]
    assert prompts == ["Café terrace at night – Vincent van Gogh, Künstler:3", "crème brûlée colours"]
    assert schedules.parse_prompt(prompts[0])[1] == 3.0
    assert any("cp1252" in w for w in result.warnings)
    assert spec.run.batch_name == "Patisserie" and spec.run.set_seed == 42


def test_utf8_bom_is_accepted(tmp_path):
    path = write_report(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert not any("encoding" in w for w in import_dd_report(path).warnings)


def test_json_error_has_file_line_col(tmp_path):
    path = tmp_path / "Broken(0)_settings.txt"
    path.write_text('{\n    "steps": 250,\n    "eta": ,\n}', encoding="utf-8")
    with pytest.raises(SpecError) as exc:
        import_dd_report(path)
    assert exc.value.problems[0][0] == f"{path}:3:12"


def test_not_an_object(tmp_path):
    path = tmp_path / "List(0)_settings.txt"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(SpecError):
        import_dd_report(path)


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"clip_guidance_scale": "lots"}, "clip_guidance_scale"),
        ({"width": 10}, "width"),
        ({"height": 100000}, "height"),
        ({"skip_steps": 300}, "skip_steps"),
        ({"midas_weight": 0}, "midas_weight"),
        ({"seed": 2**32}, "seed"),
        ({"cut_overview": "[12]*400+[4]*500"}, "cut_overview"),
        ({"frames_skip_steps": "60.5%"}, "frames_skip_steps"),
        ({"perlin_mode": "plaid"}, "perlin_mode"),
        ({"zoom": "0: (fast)"}, "zoom"),
        ({"text_prompts": {"0": ["a: b"]}}, "text_prompts"),
        ({"text_prompts": {"zero": ["a"]}}, "text_prompts"),
        ({"text_prompts": {"0": ["a"], "00": ["b"]}}, "text_prompts"),
        ({"text_prompts": {"0": ["sky:1", "sea:-1"]}}, "text_prompts"),
        ({"turbo_steps": "0"}, "turbo_steps"),
        ({"near_plane": 20000}, "near_plane/far_plane"),
    ],
)
def test_invalid_values_name_the_report_key(tmp_path, changes, key):
    with pytest.raises(SpecError) as exc:
        import_dd_report(write_report(tmp_path, **changes))
    assert key in [loc for loc, _ in exc.value.problems], exc.value.problems
    assert key in str(exc.value)


def test_file_name_patterns(tmp_path):
    dash = import_dd_report(write_report(tmp_path, "My Batch-12_settings.txt"))
    assert spec_of(dash).run.batch_name == "My Batch" and dash.document["imported_from"]["batch_num"] == 12
    odd = import_dd_report(write_report(tmp_path, "settings.json"))
    assert "batch_num" not in odd.document["imported_from"]
    assert any("file name" in w for w in odd.warnings)
    tomllib.loads(report_to_toml(odd))  # no None in the TOML


def test_bad_animation_mode_parameter():
    with pytest.raises(SpecError):
        import_dd_report(R52, animation_mode="4D")


# ---------------------------------------------------------------------------------------------
# Conversions and warnings
# ---------------------------------------------------------------------------------------------


def test_prompt_keys_are_converted_to_ints(tmp_path):
    result = import_dd_report(write_report(tmp_path, text_prompts={"10": ["late"], "0": ["early:2"], "007": ["b"]}))
    assert result.document["prompts"]["text_prompts"] == {"0": ["early:2"], "7": ["b"], "10": ["late"]}


def test_diffusion_steps_is_recomputed(tmp_path):
    result = import_dd_report(write_report(tmp_path, steps=150, diffusion_steps=1000))
    assert any("diffusion_steps" in w and "900" in w for w in result.warnings)
    assert resolve_plan(spec_of(result)).diffusion_steps == 900
    quiet = import_dd_report(write_report(tmp_path, steps=150, diffusion_steps=900))
    assert not any("diffusion_steps" in w for w in quiet.warnings)


def test_interp_spline_keeps_dd_methods_and_replaces_others(tmp_path):
    for method in ("Linear", "Quadratic", "Cubic"):
        result = import_dd_report(write_report(tmp_path, interp_spline=method))
        assert spec_of(result).animation.interp_spline == method
        assert not named_in_warnings("interp_spline", result.warnings)
    result = import_dd_report(write_report(tmp_path, interp_spline="Nearest"))
    assert spec_of(result).animation.interp_spline == "Linear"
    assert named_in_warnings("interp_spline", result.warnings)


def test_numbers_and_strings_are_coerced(tmp_path):
    path = write_report(tmp_path, cutn_batches=4.0, steps=250.0, clamp_max="0.05", use_secondary_model="False")
    spec = spec_of(import_dd_report(path))
    assert spec.cuts.cutn_batches == 4 and spec.diffusion.steps == 250
    assert spec.guidance.clamp_max == 0.05 and spec.models.use_secondary_model is False


def test_key_frames_false(tmp_path):
    numbers = {k: 0 for k in MOTION_FIELDS} | {"zoom": 1.02, "translation_z": "10"}
    spec = spec_of(import_dd_report(write_report(tmp_path, key_frames=False, **numbers), animation_mode="2D"))
    assert spec.animation.zoom == 1.02 and spec.animation.translation_z == 10.0
    constant = import_dd_report(write_report(tmp_path, key_frames=False, **{k: "0: (0)" for k in MOTION_FIELDS}))
    assert spec_of(constant).animation.angle == 0.0
    assert any("quirk Q4" in w for w in constant.warnings)
    with pytest.raises(SpecError) as exc:
        import_dd_report(write_report(tmp_path, key_frames=False,
                                      **({k: 0 for k in MOTION_FIELDS} | {"zoom": "0: (1), 10: (1.05)"})))
    assert exc.value.problems[0][0] == "zoom"


def test_missing_52_keys_are_assumed(tmp_path):
    result = import_dd_report(write_report(tmp_path, drop=("eta", "fov", "width")))
    spec = spec_of(result)
    assert spec.diffusion.eta == 0.8 and spec.camera_3d.fov == 40
    assert spec.diffusion.width_height == [1280, 768]
    for path in ("diffusion.eta", "camera_3d.fov", "diffusion.width_height"):
        assert path in result.assumed
    assert named_in_warnings("eta", result.warnings)


def test_frames_scale_fix_note_for_animations():
    result = import_dd_report(R52, animation_mode="2D")
    assert any("frames_scale" in w and "2022-05-26" in w for w in result.warnings)
    assert not any("2022-05-26" in w for w in import_dd_report(R52).warnings)  # stills: irrelevant


# ---------------------------------------------------------------------------------------------
# animation_mode / n_batches heuristics from sibling images
# ---------------------------------------------------------------------------------------------


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"")


def test_frames_next_to_the_report_mean_2d(tmp_path):
    path = write_report(tmp_path)
    touch(tmp_path, *(f"TimeToDisco(3)_{i:04d}.png" for i in range(5)), "TimeToDisco(2)_0.png",
          "TimeToDisco(3)_0000-60%.png")
    result = import_dd_report(path)
    spec = spec_of(result)
    assert spec.animation.animation_mode == "2D" and spec.run.n_batches == 1
    assert "animation.animation_mode" in result.assumed


def test_frames_with_3d_motion_mean_3d(tmp_path):
    path = write_report(tmp_path, rotation_3d_y="0: (0), 30: (0.4)")
    touch(tmp_path, "TimeToDisco(3)_0000.png", "TimeToDisco(3)_0001.png")
    assert spec_of(import_dd_report(path)).animation.animation_mode == "3D"
    path = write_report(tmp_path, translation_z="0: (4)", angle="0:(0)", zoom="0: (1), 10: (1.05)")
    assert spec_of(import_dd_report(path)).animation.animation_mode == "3D"


def test_turbo_on_means_3d(tmp_path):
    result = import_dd_report(write_report(tmp_path, turbo_mode=True))
    assert spec_of(result).animation.animation_mode == "3D"
    assert any("turbo" in w for w in result.warnings)


def test_stills_next_to_the_report_give_n_batches(tmp_path):
    path = write_report(tmp_path)
    touch(tmp_path, "TimeToDisco(3)_0.png", "TimeToDisco(3)_1.png", "TimeToDisco(3)_2.png", "TimeToDisco(4)_7.png")
    spec = spec_of(import_dd_report(path))
    assert spec.animation.animation_mode == "None" and spec.run.n_batches == 3
    touch(tmp_path, "TimeToDisco(3)_5.png")
    result = import_dd_report(path)
    assert spec_of(result).run.n_batches == 6 and any("missing" in w for w in result.warnings)


def test_no_images_means_dd_defaults():
    spec = spec_of(import_dd_report(R52))
    assert spec.animation.animation_mode == "None" and spec.run.n_batches == 50

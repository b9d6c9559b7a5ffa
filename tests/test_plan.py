"""resolve_plan: the per-image/per-frame values the engine will use, checked against DD's rules."""

from __future__ import annotations

import json

import pytest

from disco_spec.plan.resolve import diffusion_steps_for, resolve_plan, with_concrete_seed
from disco_spec.plan.seeds import derive_seed, frame_seed, still_seed
from disco_spec.spec.load import validate_document
from disco_spec.spec.schedules import keyframe_series, parse_keyframes


def _spec(**sections):
    doc = {"schema_version": 1, "run": {"set_seed": 1000}}
    for k, v in sections.items():
        doc.setdefault(k, {}).update(v)
    return validate_document(doc)


def test_still_seeds_and_names_follow_the_documented_formula() -> None:
    plan = resolve_plan(_spec(run={"n_batches": 3, "batch_name": "B"}))
    assert [it.seed for it in plan.items] == [1000, 1001, 1002]
    assert [it.output for it in plan.items] == ["B_0000.png", "B_0001.png", "B_0002.png"]
    assert all(it.frame == 0 for it in plan.items)
    it = plan.items[1]
    assert it.rng["noise"] == derive_seed(1001, "noise") != it.rng["cutouts"]


def test_seed_wraps_modulo_2_32() -> None:
    assert still_seed(2**32 - 1, 2) == 1
    assert frame_seed(2**32 - 1, 1, "2D", True) == 0


def test_animation_frame_seeds_match_dd() -> None:
    plan = resolve_plan(_spec(animation={"animation_mode": "2D", "max_frames": 4}))
    assert [it.seed for it in plan.items] == [1000, 1001, 1002, 1003]
    cont = resolve_plan(_spec(animation={"animation_mode": "Video Input", "max_frames": 3}))
    assert [it.seed for it in cont.items] == [1000, 1000, 1000]
    nocont = resolve_plan(
        _spec(animation={"animation_mode": "Video Input", "max_frames": 3}, video_input={"video_init_seed_continuity": False})
    )
    assert [it.seed for it in nocont.items] == [1001, 1002, 1003]  # DD increments before every frame


def test_size_is_floored_to_64_with_a_warning() -> None:
    plan = resolve_plan(_spec(diffusion={"width_height": [1000, 700]}))
    assert (plan.width, plan.height) == (960, 640)
    assert plan.requested_width_height == [1000, 700]
    assert any("960x640" in w for w in plan.warnings)
    assert not resolve_plan(_spec()).warnings


@pytest.mark.parametrize("steps, n, stride", [(250, 1000, 4), (150, 900, 6), (300, 900, 3), (600, 600, 1), (1000, 1000, 1), (2000, 2000, 1)])
def test_respacing_values(steps: int, n: int, stride: int) -> None:
    assert diffusion_steps_for(steps) == n
    plan = resolve_plan(_spec(diffusion={"steps": steps}, init={"skip_steps": 0}))
    assert (plan.diffusion_steps, plan.respacing_stride, plan.timestep_respacing) == (n, stride, f"ddim{steps}")


def test_prompt_weights_are_normalised_over_all_embeddings() -> None:
    plan = resolve_plan(_spec(prompts={"text_prompts": ["rocky beach:2", "sky:-1"], "image_prompts": ["a.png:3"]}))
    t = plan.items[0].text_prompts
    i = plan.items[0].image_prompts
    total = 2 - 1 + 3
    assert [p.normalized_weight for p in t] == [2 / total, -1 / total]
    assert i[0].normalized_weight == pytest.approx(3 / 16 / total)
    assert t[0].text == "rocky beach:2"  # quirk Q1: DD encodes the suffix too
    fixed = resolve_plan(_spec(prompts={"text_prompts": ["rocky beach:2"]}, guidance={"text_prompt_weight_suffix_in_text": False}))
    assert fixed.items[0].text_prompts[0].text == "rocky beach"


def test_fuzzy_prompt_counts_25_embeddings_per_text() -> None:
    # DD 5.2 replaces each text embedding by 25 noisy copies (the clean one is not kept): total 25·Σw.
    plan = resolve_plan(_spec(prompts={"text_prompts": ["a:2", "b:1"]}, guidance={"fuzzy_prompt": True}))
    assert plan.items[0].text_prompts[0].normalized_weight == pytest.approx(2 / (25 * 3))
    assert plan.items[0].text_prompts[1].normalized_weight == pytest.approx(1 / (25 * 3))


def test_prompts_switch_at_their_key_frame() -> None:
    plan = resolve_plan(
        _spec(animation={"animation_mode": "2D", "max_frames": 6}, prompts={"text_prompts": {"2": ["early"], "4": ["late"]}})
    )
    assert [it.text_prompts[0].source for it in plan.items] == ["early", "early", "early", "early", "late", "late"]


def test_init_scale_and_skip_per_frame() -> None:
    spec = _spec(
        diffusion={"steps": 100}, init={"skip_steps": 5, "init_image": "x.png"}, animation={"animation_mode": "3D", "max_frames": 3, "frames_skip_steps": "65%"}
    )
    plan = resolve_plan(spec)
    f0, f1, _ = plan.items
    assert (f0.init["kind"], f0.init_scale, f0.skip_steps, f0.start_index) == ("image", 1000.0, 5, 94)
    assert (f1.init["kind"], f1.init_scale, f1.skip_steps, f1.start_index) == ("previous_frame", 1500.0, 65, 34)
    vid = resolve_plan(_spec(animation={"animation_mode": "Video Input", "max_frames": 2}))
    assert [it.init["video_frame"] for it in vid.items] == [1, 2]
    assert all(it.skip_steps == 150 for it in vid.items)  # 60% of 250 on every video frame


def test_turbo_diffuses_the_frames_dd_does() -> None:
    plan = resolve_plan(_spec(animation={"animation_mode": "3D", "max_frames": 17}, turbo={"turbo_mode": True, "turbo_steps": "3"}))
    diffused = [it.frame for it in plan.items if it.diffuse]
    assert diffused == list(range(11)) + [12, 15]
    blends = {it.frame: it.turbo_blend for it in plan.items}
    assert blends[11] == 1.0 and blends[13] == pytest.approx(2 / 3) and blends[14] == 1.0
    assert blends[0] is None and blends[5] == pytest.approx(1 / 3) and blends[12] == pytest.approx(1 / 3)


def test_turbo_ignored_outside_3d() -> None:
    plan = resolve_plan(_spec(animation={"animation_mode": "2D", "max_frames": 14}, turbo={"turbo_mode": True}))
    assert all(it.diffuse for it in plan.items)
    assert any("3D only" in w for w in plan.warnings)


def test_motion_series_follow_the_key_frames() -> None:
    zoom = "0: (1.04), 10: (1.1)"
    plan = resolve_plan(_spec(animation={"animation_mode": "2D", "max_frames": 20, "zoom": zoom}))
    expected = keyframe_series(parse_keyframes(zoom), 20)
    assert [it.motion["zoom"] for it in plan.items] == expected
    assert plan.items[5].motion["zoom"] == pytest.approx(1.07)


def test_intermediate_saves_follow_dd_spacing() -> None:
    plan = resolve_plan(_spec(saving={"intermediate_saves": 2}))
    assert plan.items[0].intermediate_steps == [79, 158, 237]
    listed = resolve_plan(_spec(saving={"intermediate_saves": [0, 5, 9999]}))
    assert listed.items[0].intermediate_steps == [0, 5]


def test_plan_is_canonical_json_and_stable() -> None:
    spec = _spec(animation={"animation_mode": "2D", "max_frames": 5})
    a, b = resolve_plan(spec), resolve_plan(spec)
    assert a.to_json() == b.to_json() and a.sha256() == b.sha256()
    assert json.loads(a.to_json())["items"][3]["seed"] == 1003
    changed = resolve_plan(_spec(animation={"animation_mode": "2D", "max_frames": 5, "zoom": "0:(1.01)"}))
    assert changed.sha256() != a.sha256()


def test_random_seed_must_be_drawn_before_planning() -> None:
    spec = validate_document({"schema_version": 1})
    with pytest.raises(ValueError):
        resolve_plan(spec)
    concrete, drawn = with_concrete_seed(spec)
    assert drawn and 0 <= concrete.run.set_seed < 2**32
    assert resolve_plan(concrete).base_seed == concrete.run.set_seed
    fixed, drawn = with_concrete_seed(_spec())
    assert not drawn and fixed.run.set_seed == 1000

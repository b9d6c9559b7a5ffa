"""Untrusted specs: output names stay one path component, work is bounded and linear (issue 14)."""

from __future__ import annotations

import copy
import time

import pytest

from disco_spec.errors import SpecError
from disco_spec.plan.resolve import resolve_plan
from disco_spec.spec import schedules
from disco_spec.spec.load import validate_document
from disco_spec.spec.models import MAX_FRAMES, MAX_SCHEDULE_KEYS


def _problems(doc: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        validate_document(doc)
    return info.value.problems


def _with(doc: dict, section: str, **values) -> dict:
    doc = copy.deepcopy(doc)
    doc.setdefault(section, {}).update(values)
    return doc


@pytest.mark.parametrize("name", [
    "../../x", "/tmp/abs", "a/b", "a\\b", "..", ".", "x\x00y", "C:evil", "line\nbreak", " padded", "",
    "x" * 121,
])
def test_batch_name_must_be_one_path_component(smoke_doc, name):
    problems = _problems(_with(smoke_doc, "run", batch_name=name))
    assert [loc for loc, _ in problems] == ["run.batch_name"]


@pytest.mark.parametrize("name", ["smoke", "My Run 2", "TimeToDisco", "a..b", "été-夜"])
def test_ordinary_batch_names_still_validate(smoke_doc, name):
    assert validate_document(_with(smoke_doc, "run", batch_name=name)).run.batch_name == name


def test_max_frames_is_bounded(smoke_doc):
    doc = _with(smoke_doc, "animation", animation_mode="2D", max_frames=10**6)
    start = time.perf_counter()
    problems = _problems(doc)
    assert time.perf_counter() - start < 1
    assert problems[0][0] == "animation.max_frames" and str(MAX_FRAMES) in problems[0][1]


@pytest.mark.slow
def test_prompt_keys_are_bounded(smoke_doc):
    keys = {str(i): ["p"] for i in range(MAX_SCHEDULE_KEYS + 1)}
    problems = _problems(_with(smoke_doc, "prompts", text_prompts=keys))
    assert problems[0][0] == "prompts.text_prompts" and str(MAX_SCHEDULE_KEYS) in problems[0][1]


def test_keyframe_table_keys_are_bounded(smoke_doc):
    table = {str(i): 1.0 for i in range(MAX_SCHEDULE_KEYS + 1)}
    problems = _problems(_with(smoke_doc, "animation", zoom=table))
    assert problems[0][0] == "animation.zoom" and str(MAX_SCHEDULE_KEYS) in problems[0][1]


def test_many_prompt_keys_validate_and_plan_in_linear_time(smoke_doc):
    # 5,000 keys over 5,000 frames: quadratic code did 25 million key checks (~20 s); now well under a second.
    n = 5000
    doc = _with(smoke_doc, "animation", animation_mode="2D", max_frames=n)
    doc["prompts"]["text_prompts"] = {str(i): [f"prompt {i}"] for i in range(n)}
    start = time.perf_counter()
    spec = validate_document(doc)
    plan = resolve_plan(spec)
    assert time.perf_counter() - start < 8
    assert [t.source for t in plan.items[1234].text_prompts] == ["prompt 1234"]
    assert [t.source for t in plan.items[n - 1].text_prompts] == [f"prompt {n - 1}"]


@pytest.mark.parametrize("text", ["9" * 60_000, "1:(" * 20_000, "0: (1), " + "5:" * 30_000])
def test_keyframe_strings_parse_in_linear_time(smoke_doc, text):
    # DD's regex backtracks over long digit runs and unclosed "(" (60 kB took 30 s).
    start = time.perf_counter()
    try:
        schedules.parse_keyframes(text)
    except schedules.ScheduleError:
        pass
    assert time.perf_counter() - start < 1


def test_prompt_schedule_lookup_agrees_with_prompts_for_frame():
    prompts = {5: ["a"], 2: ["b"], 9: ["c", "d:2"]}
    at = schedules.prompt_schedule_lookup(prompts)
    for frame in range(12):
        assert at(frame) == schedules.prompts_for_frame(prompts, frame)
    assert schedules.prompt_schedule_lookup({})(3) == []
    with pytest.raises(schedules.ScheduleError):
        schedules.prompt_schedule_lookup({-1: ["a"]})

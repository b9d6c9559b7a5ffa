"""DD's resume fields: `resume_run` re-renders run `run_to_resume` from frame `resume_from_frame` with the spec
as it is now; the frames kept and the frames rendered equal a fresh render of the changed spec, byte for byte."""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path

import pytest

from disco_spec.errors import SpecError
from folder_snapshot import unchanged
from disco_spec.repro.rebuild import rebuild
from disco_spec.run.renderer import render
from disco_spec.spec.load import validate_document

ROOT = Path(__file__).resolve().parent.parent
SMOKE = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())
FRAMES = 4


def two_d(prompts: dict[str, list[str]], **run) -> dict:
    doc = copy.deepcopy(SMOKE)
    doc["animation"].update(animation_mode="2D", max_frames=FRAMES, angle="0: (2)", translation_x="0: (3)")
    doc["diffusion"]["steps"] = 6
    doc["init"]["skip_steps"] = 1
    doc["prompts"]["text_prompts"] = prompts
    doc["run"].update(run)
    return doc


BEFORE = {"0": ["a lighthouse"]}
AFTER = {"0": ["a lighthouse"], "2": ["a red lighthouse at night"]}  # changed from frame 2 only


def frames(run_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.glob("smoke_*.png"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("resume-fields")
    parent = render(validate_document(two_d(BEFORE)), tmp / "out", progress=False)
    parent_frames = frames(parent.run_dir)
    parent_id = parent.manifest["id"]
    fresh = render(validate_document(two_d(AFTER)), tmp / "fresh", progress=False)
    branched = render(validate_document(two_d(AFTER, resume_run=True, resume_from_frame=2,
                                              retain_overwritten_frames=True)), tmp / "out", progress=False)
    return dict(tmp=tmp, parent=parent, parent_frames=parent_frames, parent_id=parent_id, fresh=fresh,
                branched=branched)


@pytest.mark.render
@pytest.mark.slow
def test_every_frame_equals_a_fresh_render_of_the_changed_spec(runs) -> None:
    branched, fresh = runs["branched"], runs["fresh"]
    assert branched.run_dir == runs["parent"].run_dir  # DD re-renders the run in place
    assert len(frames(fresh.run_dir)) == FRAMES
    assert frames(branched.run_dir) == frames(fresh.run_dir)
    assert branched.manifest["id"] == fresh.manifest["id"]
    # frames 2 and 3 really were rendered again with the new prompt
    changed = {n for n, s in frames(branched.run_dir).items() if runs["parent_frames"][n] != s}
    assert {"smoke_0002.png", "smoke_0003.png"} <= changed


@pytest.mark.slow
@pytest.mark.render
def test_only_frames_from_n_on_are_diffused(runs, tmp_path: Path) -> None:
    from disco_spec.run.records import BaseObserver

    class Items(BaseObserver):
        def __init__(self) -> None:
            self.items: set[int] = set()

        def on_step(self, event) -> None:
            self.items.add(event.item.index)

    seen = Items()
    spec = validate_document(two_d(AFTER, resume_run=True, resume_from_frame=3))
    render(spec, runs["tmp"] / "out", progress=False, observers=[seen])
    assert seen.items == {3}
    assert frames(runs["branched"].run_dir) == frames(runs["fresh"].run_dir)


@pytest.mark.render
@pytest.mark.slow
def test_the_branch_is_recorded_outside_the_manifest_id(runs) -> None:
    m = json.loads((runs["branched"].run_dir / "manifest.json").read_text())
    branch = m["branch"]
    assert branch["from_frame"] in (2, 3)  # the later test may have branched again from 3
    assert branch["parent_manifest_id"] and "branch" not in m["hashed"]
    state = json.loads((runs["branched"].run_dir / "run_state.json").read_text())
    assert state["branch"]["from_frame"] == branch["from_frame"]
    spec_json = json.loads((runs["branched"].run_dir / "spec.json").read_text())
    assert spec_json["run"]["resume_run"] is False  # the spec as rendered, not how the run was produced


@pytest.mark.render
@pytest.mark.slow
def test_the_first_branch_recorded_the_parent_and_the_change(runs) -> None:
    # The first branch's record reached run_state.json before the second one replaced it: read it from the
    # result object of that render.
    branch = runs["branched"].branch
    assert branch["from_frame"] == 2 and branch["parent_manifest_id"] == runs["parent_id"]
    assert any(c["field"].startswith("prompts.text_prompts") for c in branch["changes"])


@pytest.mark.render
@pytest.mark.slow
def test_overwritten_frames_are_retained(runs) -> None:
    retained = runs["branched"].run_dir / "retained"
    kept = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in retained.glob("smoke_*.png")}
    assert set(kept) == {"smoke_0002.png", "smoke_0003.png"}


@pytest.mark.slow
@pytest.mark.render
def test_rebuild_of_the_branched_run_is_byte_exact(runs) -> None:
    report = rebuild(runs["branched"].run_dir / "manifest.json")
    assert report.ok, report


@pytest.mark.render
@pytest.mark.slow
def test_frames_before_n_that_would_change_are_refused(runs) -> None:
    changed_early = {"0": ["a lighthouse"], "1": ["a blue lighthouse"]}
    spec = validate_document(two_d(changed_early, resume_run=True, resume_from_frame=3))
    with pytest.raises(SpecError) as exc, unchanged(runs["tmp"] / "out"):
        render(spec, runs["tmp"] / "out", progress=False)
    assert exc.value.problems[0][0] == "run.resume_from_frame"
    assert "frame 1 would render differently" in exc.value.problems[0][1]


@pytest.mark.render
@pytest.mark.slow
def test_a_frame_past_the_run_is_refused_and_a_missing_run_named(runs, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc, unchanged(runs["tmp"] / "out"):  # not even the PNGs' text chunks
        render(validate_document(two_d(AFTER, resume_run=True, resume_from_frame=9)), runs["tmp"] / "out",
               progress=False)
    assert exc.value.problems[0][0] == "run.resume_from_frame"
    with pytest.raises(SpecError) as exc, unchanged(runs["tmp"] / "out"):
        render(validate_document(two_d(AFTER, resume_run=True, run_to_resume=42)), runs["tmp"] / "out",
               progress=False)
    assert exc.value.problems[0][0] == "run.run_to_resume"
    with pytest.raises(SpecError) as exc:
        render(validate_document(two_d(AFTER, resume_run=True)), tmp_path / "nothing-here", progress=False)
    assert exc.value.problems[0][0] == "run.resume_run"


def test_a_journal_naming_files_outside_its_run_folder_is_not_followed(tmp_path: Path) -> None:
    from disco_spec.run.journal import FRAMES_LOG, read_entries

    outside = tmp_path / "secret.png"
    outside.write_bytes(b"not yours")
    rd = tmp_path / "run-0001"
    rd.mkdir()
    good = {"item": 0, "frame": 0, "files": [{"path": "smoke_0000.png", "kind": "image", "sha256": "0" * 64}]}
    bad = {"item": 1, "frame": 1, "files": [{"path": "../secret.png", "kind": "image", "sha256": "0" * 64}]}
    bad_state = {"item": 2, "frame": 2, "files": [], "state": {"prev_frame": {"path": "/etc/passwd", "sha256": "0"}}}
    (rd / FRAMES_LOG).write_text("".join(json.dumps(e) + "\n" for e in (good, bad, bad_state)))
    assert [e["item"] for e in read_entries(rd)] == [0]

"""The command line a newcomer expects: `new`, `render --set`, and `verify`/`diff` on a render's --out folder.

Everything runs through the console entry point as a user would type it. The renders are tiny (tiny models,
64x64, 3 steps) and shared by the module: one starter spec rendered twice into one --out folder.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
from cli_helpers import run_cli

from pydantic import BaseModel

from disco_spec.spec.load import load_spec, spec_to_document
from disco_spec.spec.models import JobSpec

# What turns DD's defaults (full-size models, 1280x768, 250 steps, 50 images) into a render a CPU does in seconds.
TINY = [
    "diffusion_model=tiny-uncond", "secondary_model=tiny-secondary", "lpips_model=tiny-lpips",
    "ViTB32=false", "ViTB16=false", "RN50=false", 'extra_clip_models=[{ name = "tiny-clip" }]',
    "n_batches=1", "set_seed=7", "steps=3", "skip_steps=1", "width_height=[64, 64]", "cutn_batches=1",
    'cut_overview="[2]*1000"', 'cut_innercut="[1]*1000"',
]


def _sets(*pairs: str) -> list[str]:
    return [a for p in pairs for a in ("--set", p)]


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("new") / "job.toml"
    code, _, err = run_cli("new", str(path))
    assert code == 0, err
    return path


@pytest.fixture(scope="module")
def rendered(starter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starter rendered twice with tiny-model overrides into one --out folder (runs 0001 and 0002)."""
    out = tmp_path_factory.mktemp("out")
    for scale in ("5000", "1500"):
        code, stdout, err = run_cli("render", str(starter), "--out", str(out), "-q", "--no-track",
                                    *_sets(*TINY, f"clip_guidance_scale={scale}"))
        assert code == 0, err
        assert "1 image(s) in" in stdout
    return out


# ---------------------------------------------------------------------------------------------
# disco-spec new
# ---------------------------------------------------------------------------------------------


def test_new_writes_every_setting_at_dd_defaults_with_a_comment_from_the_models(starter: Path) -> None:
    text = starter.read_text(encoding="utf-8")
    code, out, err = run_cli("validate", str(starter))
    assert code == 0 and f"{starter}: ok" in out, err
    # as it is, the file is exactly DD 5.2's defaults (the models' defaults)
    assert spec_to_document(load_spec(starter)) == spec_to_document(JobSpec(schema_version=1))
    lines = text.splitlines()
    doc = tomllib.loads(text)
    for section, info in JobSpec.model_fields.items():
        cls = info.annotation
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):  # a top-level field, not a section
            continue
        assert f"[{section}]" in lines, section
        for name, field in cls.model_fields.items():
            assert field.description, f"{section}.{name} has no description for the starter's comment"
            at = next(i for i, line in enumerate(lines) if line.startswith((f"{name} =", f"{name}.", f"# {name} =")))
            assert lines[at - 1] == "# " + " ".join(field.description.split()), f"{section}.{name}"
            if not lines[at].startswith("# "):  # set (not a None default): present in its section
                assert name in doc[section], f"{section}.{name}"


def test_new_file_plans_as_dd_would(starter: Path) -> None:
    code, out, err = run_cli("plan", str(starter), "--json", "--seed", "7")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["n_items"] == 50 and (plan["width"], plan["height"]) == (1280, 768)
    assert plan["steps"] == 250 and plan["sampler"] == "ddim" and plan["items"][0]["skip_steps"] == 10


def test_new_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("# my work\n")
    code, _, err = run_cli("new", str(path))
    assert code == 2 and str(path) in err and "--force" in err
    assert path.read_text() == "# my work\n"
    code, _, err = run_cli("new", str(path), "--force")
    assert code == 0, err
    code, _, _ = run_cli("validate", str(path))
    assert code == 0
    code, out, _ = run_cli("new", "-")
    assert code == 0 and out == path.read_text()


# ---------------------------------------------------------------------------------------------
# render --set
# ---------------------------------------------------------------------------------------------


@pytest.mark.render
@pytest.mark.slow
def test_render_set_overrides_are_recorded_like_any_setting(rendered: Path) -> None:
    runs = sorted((rendered / "TimeToDisco").glob("run-*"))
    assert [r.name for r in runs] == ["run-0001", "run-0002"]
    for run, scale in zip(runs, (5000, 1500)):
        spec = json.loads((run / "spec.json").read_text())
        manifest = json.loads((run / "manifest.json").read_text())
        for doc in (spec, manifest["hashed"]["spec"]):
            assert doc["guidance"]["clip_guidance_scale"] == scale
            assert doc["diffusion"]["steps"] == 3 and doc["diffusion"]["width_height"] == [64, 64]
            assert doc["models"]["extra_clip_models"] == [{"name": "tiny-clip", "arch": None, "pretrained": None,
                                                           "sha256": None}]
            assert doc["run"]["set_seed"] == 7
        assert (run / "TimeToDisco_0000.png").is_file()


@pytest.mark.parametrize("arg, named, says", [
    ("stepz=10", "--set stepz", "did you mean 'steps'"),
    ("steps=10,20", "--set steps", "takes one value"),
    ("steps=many", "--set steps", "integer"),
    ("steps", "--set steps", "KEY=VALUE"),
    ("skip_steps=300", "--set skip_steps", "less than diffusion.steps"),
    ("steps=5", "--set steps", "init.skip_steps"),  # a cross-field rule the override breaks
])
def test_render_set_bad_key_or_value_exits_2_naming_the_key(starter: Path, tmp_path: Path, arg: str, named: str,
                                                            says: str) -> None:
    code, _, err = run_cli("render", str(starter), "--out", str(tmp_path), "-q", "--no-track", "--set", arg)
    assert code == 2, err
    assert named in err and says in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_render_set_twice_is_refused(starter: Path, tmp_path: Path) -> None:
    code, _, err = run_cli("render", str(starter), "--out", str(tmp_path), "--no-track",
                           *_sets("steps=10", "diffusion.steps=20"))
    assert code == 2 and "set twice" in err


# ---------------------------------------------------------------------------------------------
# validate: every problem of every stage
# ---------------------------------------------------------------------------------------------


def _problems(err: str, path: Path) -> dict[str, str]:
    lines = [line.removeprefix(f"{path}: ") for line in err.strip().splitlines()]
    return dict(line.split(": ", 1) for line in lines)


def test_validate_reports_problems_of_every_stage_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\nbatch_nam = "x"\n'          # no schema_version; an unknown key
                   '[animation]\nzoom = "0: (1), 10: (x)"\n'  # a broken key-frame string (a field's grammar)
                   '[camera_3d]\nfar_plane = 1\n'       # a section's rule (far_plane > near_plane)
                   '[init]\nskip_steps = 300\n')        # a cross-field rule (skip_steps < steps)
    code, out, err = run_cli("validate", str(bad))
    assert code == 2 and out == ""
    problems = _problems(err, bad)
    assert set(problems) == {"schema_version", "run.batch_nam", "animation.zoom", "camera_3d", "init.skip_steps"}
    assert "did you mean 'batch_name'" in problems["run.batch_nam"]
    assert "'x' is not a number" in problems["animation.zoom"]
    assert "far_plane must be greater than near_plane" in problems["camera_3d"]
    assert "must be less than diffusion.steps (250)" in problems["init.skip_steps"]


def test_validate_does_not_echo_a_rule_that_saw_a_default(tmp_path: Path) -> None:
    """steps is wrong, so the skip_steps < steps rule would only have seen the default 250: not reported."""
    bad = tmp_path / "bad.toml"
    bad.write_text('schema_version = 1\n[diffusion]\nsteps = "many"\n[init]\nskip_steps = 260\n')
    code, _, err = run_cli("validate", str(bad))
    assert code == 2
    assert set(_problems(err, bad)) == {"diffusion.steps"}


def test_validate_stops_at_another_spec_version(tmp_path: Path) -> None:
    newer = tmp_path / "newer.toml"
    newer.write_text('schema_version = 2\n[run]\nbatch_nam = "x"\n')
    code, _, err = run_cli("validate", str(newer))
    assert code == 2 and set(_problems(err, newer)) == {"schema_version"} and "newer disco-spec" in err


# ---------------------------------------------------------------------------------------------
# verify and diff take the --out folder of a render
# ---------------------------------------------------------------------------------------------


def test_verify_an_out_folder_checks_every_run_under_it(rendered: Path, tmp_path: Path) -> None:
    code, out, err = run_cli("verify", str(rendered))
    assert code == 0, err
    assert out.count(": ok (") == 2 and "2 run folder(s) checked, all ok" in out
    code, out, _ = run_cli("verify", str(rendered / "TimeToDisco"))  # the batch folder works too
    assert code == 0 and out.count(": ok (") == 2

    copy = tmp_path / "out"
    shutil.copytree(rendered, copy)
    png = copy / "TimeToDisco" / "run-0002" / "TimeToDisco_0000.png"
    png.write_bytes(png.read_bytes() + b"\0")
    (copy / "TimeToDisco" / "run-0003").mkdir()  # an interrupted render: started, no manifest yet
    (copy / "TimeToDisco" / "run-0003" / "spec.json").write_text("{}")
    code, out, _ = run_cli("verify", str(copy), "--json")
    assert code == 1
    report = json.loads(out)
    assert [r["ok"] for r in report["runs"]] == [True, False]
    assert report["runs"][1]["problems"][0]["path"] == "TimeToDisco_0000.png"
    assert report["unfinished"] == [str(copy / "TimeToDisco" / "run-0003")]
    code, out, _ = run_cli("verify", str(copy))
    assert code == 1 and "1 with problems" in out and "run-0003: unfinished" in out


def test_diff_two_out_folders_pairs_runs_by_relative_path(rendered: Path, tmp_path: Path) -> None:
    same = tmp_path / "same"
    shutil.copytree(rendered, same)
    code, out, err = run_cli("diff", str(rendered), str(same))
    assert code == 0, out + err
    assert "== TimeToDisco/run-0001: same" in out and "== TimeToDisco/run-0002: same" in out
    assert out.splitlines()[-1] == "same: 2 run pair(s): 2 same, 0 differ"

    other = tmp_path / "other"  # run-0002 replaced by a copy of run-0001 (clip_guidance_scale 5000, not 1500)
    shutil.copytree(rendered, other)
    shutil.rmtree(other / "TimeToDisco" / "run-0002")
    shutil.copytree(rendered / "TimeToDisco" / "run-0001", other / "TimeToDisco" / "run-0002")
    shutil.copytree(rendered / "TimeToDisco" / "run-0001", other / "TimeToDisco" / "run-0009")
    code, out, _ = run_cli("diff", str(rendered), str(other), "--json")
    assert code == 1
    report = json.loads(out)
    pairs = {p["path"]: p for p in report["pairs"]}
    assert set(pairs) == {"TimeToDisco/run-0001", "TimeToDisco/run-0002"}
    assert pairs["TimeToDisco/run-0001"]["same"]
    assert [(c["path"], c["a"], c["b"]) for c in pairs["TimeToDisco/run-0002"]["spec"]] == [
        ("guidance.clip_guidance_scale", 1500.0, 5000.0)]
    assert report["only_a"] == [] and report["only_b"] == ["TimeToDisco/run-0009"]


def test_diff_an_out_folder_with_one_run(rendered: Path) -> None:
    run1 = rendered / "TimeToDisco" / "run-0001"
    code, out, _ = run_cli("diff", str(rendered), str(run1))
    assert code == 1
    assert "== TimeToDisco/run-0001: same" in out and "== TimeToDisco/run-0002: " in out
    assert "guidance.clip_guidance_scale: 1500" in out and "→ 5000" in out  # run-0002 (A) against run-0001 (B)


def test_verify_and_diff_refuse_a_folder_without_runs(tmp_path: Path) -> None:
    for args in (["verify", str(tmp_path)], ["diff", str(tmp_path), str(tmp_path)]):
        code, _, err = run_cli(*args)
        assert code == 2 and "no manifest.json" in err and str(tmp_path) in err

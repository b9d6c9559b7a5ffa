"""Exact resume: killed, truncated and damaged runs continue to the bytes of an uninterrupted render;
changed specs, plans and weights are refused (exit 2)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from disco_spec.errors import SpecError
from folder_snapshot import unchanged
from disco_spec.run.records import BaseObserver
from disco_spec.run.renderer import render
from disco_spec.spec.load import validate_document

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SMOKE = tomllib.loads((SPECS / "smoke.toml").read_text())


def doc_with(mode: str, **patch) -> dict:
    doc = copy.deepcopy(SMOKE)
    doc["animation"]["animation_mode"] = mode
    for section, values in patch.items():
        doc.setdefault(section, {}).update(values)
    return doc


def write_spec(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def shas(run_dir: Path, pattern: str = "smoke_*.png") -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(run_dir).glob(pattern))}


class Stepped(BaseObserver):
    def __init__(self) -> None:
        self.items: set[int] = set()

    def on_step(self, event) -> None:
        self.items.add(event.item.index)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "disco_spec.cli", *args, "--no-track"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def cli_in_process(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from disco_spec.cli import app as cli_mod

    monkeypatch.setattr(sys, "argv", ["disco-spec", *args, "--no-track"])
    with pytest.raises(SystemExit) as exc:
        cli_mod.main()
    return exc.value.code, capsys.readouterr().err


def make_video(path: Path, n: int, size=(48, 40)) -> Path:
    import imageio_ffmpeg
    import numpy as np

    w, h = size
    gen = imageio_ffmpeg.write_frames(str(path), size, fps=8, macro_block_size=8, ffmpeg_log_level="error")
    gen.send(None)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        gen.send(np.ascontiguousarray(np.stack([(xx * 5 + i * 40) % 256, yy * 6, xx * 0 + 90], -1).astype(np.uint8)))
    gen.close()
    return path


def recorded_lines(run_dir: Path) -> int:
    try:
        return sum(1 for line in (run_dir / "frames.jsonl").read_text().splitlines() if line.endswith("}"))
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------------------------- kill -9, resume


@pytest.mark.render
@pytest.mark.slow
def test_sigkill_mid_animation_then_resume_is_byte_identical(tmp_path: Path) -> None:
    # 3D turbo: the resumed frames need the unblended previous frame and the old-warp chain
    doc = doc_with("3D", animation={"max_frames": 6}, turbo={"turbo_mode": True, "turbo_steps": "3", "turbo_preroll": 1})
    spec = write_spec(tmp_path / "anim.json", doc)
    ref = cli("render", str(spec), "--out", str(tmp_path / "ref"), "-q", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "out"
    run_dir = out / "smoke" / "run-0001"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "disco_spec.cli", "render", str(spec), "--out", str(out), "-q",
                             "--no-track"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while recorded_lines(run_dir) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the render finished before it could be killed: " + proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done = recorded_lines(run_dir)
    assert 2 <= done < 6
    assert not (run_dir / "manifest.json").exists()

    res = cli("render", str(spec), "--out", str(out), "-q", "--resume", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "run-0001" in res.stdout and not (out / "smoke" / "run-0002").exists()
    want = shas(tmp_path / "ref" / "smoke" / "run-0001")
    assert len(want) == 6
    assert shas(run_dir) == want
    assert recorded_lines(run_dir) == 6
    manifests = [d / "manifest.json" for d in (tmp_path / "ref" / "smoke" / "run-0001", run_dir)]
    if all(m.exists() for m in manifests):  # the manifest of a resumed run equals the uninterrupted one's
        a, b = (json.loads(m.read_text()) for m in manifests)
        assert a["id"] == b["id"]


# ----------------------------------------------------------------------------- damaged frame files


@pytest.fixture(scope="module")
def anim_run(tmp_path_factory):
    spec = validate_document(doc_with("2D", animation={"max_frames": 4}))
    out = tmp_path_factory.mktemp("resume2d")
    result = render(spec, out, progress=False)
    return spec, out, result, shas(result.run_dir)


@pytest.mark.render
@pytest.mark.slow
def test_resume_rerenders_a_truncated_last_frame(anim_run) -> None:
    spec, out, first, want = anim_run
    rd = first.run_dir
    last = rd / "smoke_0003.png"
    last.write_bytes(last.read_bytes()[:200])  # a half-written file
    with open(rd / "frames.jsonl", "a") as f:
        f.write('{"item": 9, "fra')  # a torn line from a kill during the append
    seen = Stepped()
    result = render(spec, out, progress=False, resume=True, observers=[seen])
    assert result.run_dir == rd
    assert seen.items == {3}
    assert shas(rd) == want
    # outputs cover every frame, in the order of an uninterrupted render
    assert [(o.path, o.kind, o.item_index) for o in result.outputs] == [(o.path, o.kind, o.item_index) for o in first.outputs]
    assert [o.sha256 for o in result.outputs] == [want[o.path] for o in result.outputs]
    assert [json.loads(line)["item"] for line in (rd / "frames.jsonl").read_text().splitlines()] == [0, 1, 2, 3]


@pytest.mark.render
@pytest.mark.slow
def test_resume_continues_from_a_deleted_middle_frame(anim_run) -> None:
    spec, out, first, want = anim_run
    rd = first.run_dir
    (rd / "smoke_0001.png").unlink()
    seen = Stepped()
    render(spec, out, progress=False, resume=True, observers=[seen], run_dir=rd)
    assert seen.items == {1, 2, 3}  # frames after it start from it
    assert shas(rd) == want
    seen = Stepped()
    render(spec, out, progress=False, resume=True, observers=[seen])  # a finished run: nothing to do
    assert seen.items == set() and shas(rd) == want


@pytest.mark.render
def test_resume_refuses_a_changed_spec_plan_or_weight(anim_run, tmp_path: Path, monkeypatch, capsys) -> None:
    spec, out, first, _ = anim_run
    rd = first.run_dir
    changed = doc_with("2D", animation={"max_frames": 4}, guidance={"clip_guidance_scale": 6000})
    path = write_spec(tmp_path / "changed.json", changed)
    with unchanged(out):
        code, err = cli_in_process(monkeypatch, capsys, "render", str(path), "--out", str(out), "--resume")
    assert code == 2
    assert "guidance.clip_guidance_scale" in err and "5000" in err and "6000" in err

    same = write_spec(tmp_path / "same.json", doc_with("2D", animation={"max_frames": 4}))
    state_file = rd / "run_state.json"
    saved = state_file.read_text()
    try:
        state = json.loads(saved)
        state["plan_sha256"] = "0" * 64
        state_file.write_text(json.dumps(state))
        with unchanged(out):
            code, err = cli_in_process(monkeypatch, capsys, "render", str(same), "--out", str(out), "--resume")
        assert code == 2 and "plan" in err and "0" * 64 in err

        state = json.loads(saved)
        state["weights"][0]["sha256"] = "f" * 64
        state_file.write_text(json.dumps(state))
        with pytest.raises(SpecError) as exc, unchanged(out):  # refused after the models load: still no write
            render(spec, out, progress=False, resume=True)
        assert "models.diffusion" in str(exc.value.problems) and "f" * 64 in str(exc.value.problems)
    finally:
        state_file.write_text(saved)

    code, err = cli_in_process(monkeypatch, capsys, "render", str(same), "--out", str(tmp_path / "empty"), "--resume")
    assert code == 2 and "no run of batch 'smoke'" in err


# -------------------------------------------------------------------------- stills and Video Input


@pytest.mark.render
@pytest.mark.slow
def test_resume_of_stills_renders_the_missing_images_with_the_drawn_seed(tmp_path: Path) -> None:
    doc = copy.deepcopy(SMOKE)
    doc["run"].update({"n_batches": 3, "set_seed": "random_seed"})
    spec = validate_document(doc)
    first = render(spec, tmp_path, progress=False)
    assert first.seed_drawn
    want = shas(first.run_dir)
    assert len(want) == 3
    (first.run_dir / "smoke_0001.png").unlink()
    seen = Stepped()
    again = render(spec, tmp_path, progress=False, resume=True, observers=[seen])
    assert seen.items == {1}  # any still renders alone by its seed
    assert again.plan.base_seed == first.plan.base_seed
    assert shas(first.run_dir) == want
    assert [o.path for o in again.outputs] == [o.path for o in first.outputs]


@pytest.mark.render
@pytest.mark.slow
def test_resume_of_video_input_rerenders_only_missing_frames(tmp_path: Path) -> None:
    src = make_video(tmp_path / "clip.mp4", n=3)
    doc = doc_with("Video Input", video_input={"video_init_path": str(src), "extract_nth_frame": 1})
    spec = validate_document(doc)
    first = render(spec, tmp_path / "out", progress=False, allow_paths=[tmp_path])
    want = shas(first.run_dir)
    (first.run_dir / "smoke_0001.png").unlink()
    (first.run_dir / "video_frames" / "0002.jpg").unlink()  # re-extracted identically
    seen = Stepped()
    again = render(spec, tmp_path / "out", progress=False, resume=True, observers=[seen], allow_paths=[tmp_path])
    assert seen.items == {1} and shas(first.run_dir) == want
    assert again.plan.n_items == 3
    make_video(src, n=4)  # a different input video
    (first.run_dir / "video_frames" / "0002.jpg").unlink()  # a refusal must not re-extract it first
    with pytest.raises(SpecError) as exc, unchanged(tmp_path / "out"):
        render(spec, tmp_path / "out", progress=False, resume=True, allow_paths=[tmp_path])
    assert "video_input.video_init_path" in str(exc.value.problems)

"""`disco-spec doctor`: the machine report, two real smoke renders compared, and what to change when they differ."""

from __future__ import annotations

import inspect

import pytest
import torch
from PIL import Image

from cli_helpers import run_cli
from disco_spec.cli import doctor as cli_doctor
from disco_spec.repro import doctor
from disco_spec.repro.doctor import RenderCheck, advice_for, compare_renders

pytestmark = pytest.mark.render



def test_doctor_on_cpu_exits_0_and_says_the_renders_are_identical():
    code, out, err = run_cli("doctor", "--device", "cpu")
    assert code == 0, out + err
    assert "result       IDENTICAL" in out
    # the machine report a person setting up a runner reads
    for line_start in ("device       cpu:", "versions     torch ", "determinism  deterministic algorithms on",
                       "TF32         matmul ", "memory       ", "cache        ", "models       ", "  present    "):
        assert f"\n{line_start}" in out, line_start
    assert "tiny-uncond" in out.split("  present")[1].split("\n")[0]
    # fewer steps than the spec, and the output says so
    assert f"diffusion.steps = {doctor.DEFAULT_STEPS} (the spec has 12; fewer steps" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("  render ")]
    assert len(lines) == 2 and all("smoke_0000.png" in ln and "manifest " in ln for ln in lines)
    # the same hashes printed for both renders
    assert lines[0].split(" s, ", 1)[1] == lines[1].split(" s, ", 1)[1]


def test_a_forced_difference_exits_1_and_names_the_output(monkeypatch, tmp_path):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # so the advice to fix the thread count is given
    real_render = doctor.render
    calls = []

    def render_then_tamper(spec, out, **kwargs):
        result = real_render(spec, out, **kwargs)
        calls.append(result)
        if len(calls) == 2:  # the second render's final image gets one pixel changed
            path = result.run_dir / "smoke_0000.png"
            img = Image.open(path).convert("RGB")
            r, g, b = img.getpixel((0, 0))
            img.putpixel((0, 0), ((r + 1) % 256, g, b))
            img.save(path)
        return result

    monkeypatch.setattr(doctor, "render", render_then_tamper)
    code, out, err = run_cli("doctor", "--device", "cpu", "--steps", "3", "--keep", str(tmp_path / "kept"))
    assert code == 1, out + err
    assert len(calls) == 2
    assert "result       DIFFERENT" in out
    assert "  - output smoke_0000.png: sha256 " in out and "(render 1) != " in out
    assert "manifest id" not in out  # the manifests agree: only the tampered file is named
    assert "what to change:" in out and "OMP_NUM_THREADS" in out
    assert "diffusion.steps = 3 (the spec has 12" in out
    for i in (1, 2):  # --keep keeps both renders
        assert (tmp_path / "kept" / f"run-{i}" / "manifest.json").is_file()


def test_cuda_without_a_cuda_device_is_an_input_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(doctor, "render", lambda *a, **k: pytest.fail("must not render"))
    code, out, err = run_cli("doctor", "--device", "cuda")
    assert code == 2
    assert "--device" in err and "no CUDA device" in err and "--device cpu" in err
    assert "Traceback" not in err + out


def test_an_unknown_device_is_an_input_error():
    code, _, err = run_cli("doctor", "--device", "tpu")
    assert code == 2 and "must be one of auto, cuda, cpu" in err


def test_a_render_that_raises_is_reported_with_advice(monkeypatch):
    def failing_render(*args, **kwargs):
        raise RuntimeError("grid_sampler_2d_backward_cuda does not have a deterministic implementation")

    monkeypatch.setattr(doctor, "render", failing_render)
    report = doctor.run_doctor("cpu", steps=3)
    assert not report.ok
    assert report.differences[0].startswith("render 1 failed: RuntimeError: grid_sampler_2d_backward_cuda")
    assert any("disco-spec bug" in a and "engine.deterministic = false" in a for a in report.advice)
    code, out, _ = run_cli("doctor", "--device", "cpu", "--steps", "3")
    assert code == 1 and "render 1   FAILED: RuntimeError" in out


def _check(outputs, mid="m" * 64, **env):
    return RenderCheck(run_dir="x", manifest_id=mid, outputs=outputs, environment=env)


def test_compare_names_outputs_manifest_ids_and_environment_fields():
    a = _check({"a.png": "1" * 64, "b.png": "2" * 64}, threads={"torch": 2})
    assert compare_renders(a, _check(dict(a.outputs), threads={"torch": 2})) == []
    b = _check({"a.png": "1" * 64}, mid="n" * 64, threads={"torch": 4})
    diffs = compare_renders(a, b)
    assert diffs == [
        "output b.png: sha256 2222222222222222 (render 1) != (missing) (render 2)",
        "manifest id: mmmmmmmmmmmmmmmm (render 1) != nnnnnnnnnnnnnnnn (render 2)",
        "environment.threads.torch: 2 (render 1) != 4 (render 2)",
    ]
    assert any("environment changed between the two renders" in x for x in advice_for("cpu", {}, [a, b], diffs))


def test_cuda_advice_names_the_settings_to_change():
    env = {"torch": {"deterministic_algorithms": False, "cudnn_benchmark": True, "tf32_matmul": False,
                     "tf32_cudnn": True}, "env_vars": {}}
    advice = " | ".join(advice_for("cuda", env, [_check({}), _check({})], ["output x.png: ..."]))
    assert "engine.deterministic = true" in advice
    assert "CUBLAS_WORKSPACE_CONFIG=:4096:8" in advice
    assert "cudnn.benchmark = False" in advice
    assert "TF32 is on" in advice
    good = {"torch": {"deterministic_algorithms": True, "tf32_matmul": False, "tf32_cudnn": False},
            "env_vars": {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}}
    advice = advice_for("cuda", good, [_check({}), _check({})], ["output x.png: ..."])
    assert len(advice) == 1 and "please report it" in advice[0]
    assert advice_for("cuda", env, [], []) == []  # nothing differed: nothing to change


def test_the_cli_default_steps_is_the_library_default():
    steps = inspect.signature(cli_doctor.doctor).parameters["steps"].default
    assert steps.default == doctor.DEFAULT_STEPS

"""bench/gpu_check.sh, the prepared GPU check, as far as a CPU can check it: the script parses, documents how it
is run within the device's limits (6 minutes of command time, timeout_s 400, 3 files back), runs its steps in
order with a verdict line each (`--cpu --quick`, with a fake $OUT), and the hash mode of bench/engine_step.py
it relies on gives equal hashes for two runs (the weights and every draw are seeded), a different one for a
different latent, and sees a NaN. (`bash bench/gpu_check.sh --cpu` runs every step at tiny sizes: ~3 minutes.)"""

from __future__ import annotations

import pytest
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.render

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _engine_step():
    spec = importlib.util.spec_from_file_location("engine_step_bench", ROOT / "bench" / "engine_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_script_parses_and_says_how_to_run_it():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    assert os.access(SCRIPT, os.X_OK)
    r = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for needed in ('carry:     [".ref", ".whl"]', "timeout_s: 400", "--fetch-wheels", "--cpu", "--quick",
                   "bench/results/", "6 minutes", "3 files back"):
        assert needed in r.stdout, needed
    text = SCRIPT.read_text()
    budget = int(re.search(r"BUDGET=(\d+)\n    REAL_ARGS=\(--config real-default\)", text).group(1))
    assert budget <= 6 * 60 + 10 < 400  # the GPU mode's budget: within the call's timeout, a rerun fits
    bad = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "usage" in bad.stderr


@pytest.mark.slow
def test_hash_mode_is_reproducible_and_sees_a_changed_render():
    bench = _engine_step()
    device = torch.device("cpu")
    a = bench.hash_config("tiny", device, 1)
    b = bench.hash_config("tiny", device, 1)
    assert len(a["sha256"]) == 64 and a["sha256"] == b["sha256"]
    assert a["x0_finite"] is True and a["nan_guard"] == 0.0 and a["estimate_gib"] > 0
    assert a["hash_steps"] == 1 and a["size"] == "64x64" and a["s_per_step"] > 0
    c = bench.hash_config("tiny", device, 1, size=(128, 64))  # another render: another hash
    assert c["size"] == "128x64" and c["sha256"] != a["sha256"]


def test_spec_overrides_shrink_the_real_config():
    bench = _engine_step()
    spec = bench._spec("real-default", 6, size=(64, 64), cutn_batches=1, clips=["ViTB32"])
    assert list(spec.diffusion.width_height) == [64, 64] and spec.cuts.cutn_batches == 1
    assert (spec.models.ViTB32, spec.models.ViTB16, spec.models.RN50) == (True, False, False)
    full = bench._spec("real-default", 6)  # DD 5.2's default still
    assert list(full.diffusion.width_height) == [1280, 768] and full.cuts.cutn_batches == 4
    assert (full.models.ViTB32, full.models.ViTB16, full.models.RN50) == (True, True, True)


STEPS = ["kernel probes", "doctor", "tiny modes x2", "real architectures x2", "DD reference"]


@pytest.mark.slow
@pytest.mark.render
def test_the_quick_cpu_run_writes_three_files_and_a_verdict_per_step_in_order(tmp_path):
    out = tmp_path / "out"  # what the device tool would bring back
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    env.pop("RESULTS_DIR", None)
    r = subprocess.run(["bash", str(SCRIPT), "--cpu", "--quick"], capture_output=True, text=True, timeout=900, env=env,
                       cwd=str(ROOT))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 3 <= 8 and files[0].endswith("-logs.tar.gz") and files[1].endswith(".json")
    verdicts = [line for line in r.stdout.splitlines() if line[:6] in ("PASS  ", "FAIL  ", "SKIP  ")]
    assert [v[6:].split(": ", 1)[0] for v in verdicts] == STEPS  # one each, in the stated order
    assert [v[:4] for v in verdicts] == ["PASS"] * 4 + ["SKIP"]
    real = verdicts[3]
    assert "secondary on: identical" in real and "secondary off: identical" in real and "NaN guard 0x" in real
    assert "x̂₀ finite" in real and "plan --resources" in real
    summary = json.loads((out / files[1]).read_text())
    assert summary["ok"] is True and [c["check"] for c in summary["checks"]] == STEPS


def test_hash_mode_sees_a_nan(monkeypatch):
    """A NaN render hashes the same twice: the hash mode reports every x̂₀'s finiteness and the NaN guard."""
    bench = _engine_step()
    from disco_spec.engine import item as engine_item

    real = engine_item.sample_item

    def nan_x0(*args, **kwargs):
        for j, k, x0, stats, final in real(*args, **kwargs):
            yield j, k, x0 * float("nan"), {**stats, "nan_guard": 1.0}, final

    monkeypatch.setattr(bench, "sample_item", nan_x0)
    r = bench.hash_config("tiny", torch.device("cpu"), 1)
    assert r["x0_finite"] is False and r["x0_not_finite"] == 2 and r["nan_guard"] == 2.0

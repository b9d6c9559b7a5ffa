"""bench/gpu_check.sh, the prepared GPU check, as far as a CPU can check it: the script parses and
documents how it is run, and the hash mode of bench/engine_step.py it relies on gives equal hashes for
two runs (the weights and every draw are seeded) and a different one for a different latent.
(`bash bench/gpu_check.sh --cpu` runs every step of the script at tiny sizes; too slow for the suite.)"""

from __future__ import annotations

import pytest
import importlib.util
import os
import subprocess
from pathlib import Path

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
    for needed in ('carry:     [".ref", ".whl"]', "timeout_s: 540", "--fetch-wheels", "--cpu", "bench/results/"):
        assert needed in r.stdout, needed
    bad = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "usage" in bad.stderr


@pytest.mark.slow
def test_hash_mode_is_reproducible_and_sees_a_changed_render():
    bench = _engine_step()
    device = torch.device("cpu")
    a = bench.hash_config("tiny", device, 1)
    b = bench.hash_config("tiny", device, 1)
    assert len(a["sha256"]) == 64 and a["sha256"] == b["sha256"]
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

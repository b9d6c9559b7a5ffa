"""Where two renders part: per-step checksums of x_t and x̂₀ (engine.checksum) in each item's journal line, read
back by `disco-spec diff` and `doctor` as "identical through step k; first difference at step k+1"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import run_cli, smoke_doc, write_spec
from disco_spec.engine.checksum import checksum_hex, tensor_checksum
from disco_spec.engine.guidance import read_step
from disco_spec.repro.divergence import divergence

ROOT = Path(__file__).resolve().parent.parent


def test_the_checksum_is_the_exact_integer_sum_of_the_words_and_any_changed_value_changes_it():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 48, 80, generator=g)
    total = int(x.numpy().view(np.uint64).sum(dtype=np.uint64))  # the 64-bit words, modulo 2**64
    assert int(tensor_checksum(x)) == total - (1 << 64 if total >= 1 << 63 else 0)
    odd = torch.randn(3, 5, generator=g)  # 60 bytes: read as int32 words
    assert int(tensor_checksum(odd)) == int(odd.numpy().view(np.int32).astype(np.int64).sum())
    # exact whatever the reduction's order: two partial sums added, other thread counts (other splits)
    halves = (int(tensor_checksum(x[:, :2])) + int(tensor_checksum(x[:, 2:])) + 2**63) % 2**64 - 2**63
    threads = torch.get_num_threads()
    try:
        by_threads = set()
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            by_threads.add(int(tensor_checksum(x)))
    finally:
        torch.set_num_threads(threads)
    assert by_threads == {halves}
    y = x.clone()
    y[0, 1, 7, 9] = torch.nextafter(y[0, 1, 7, 9], torch.tensor(10.0))  # one float one ulp away
    assert int(tensor_checksum(y)) != int(tensor_checksum(x))
    assert tensor_checksum(x).dtype == torch.int64 and tensor_checksum(x).device == x.device
    assert checksum_hex(-1) == "f" * 16 and len(checksum_hex(5)) == 16


def test_stats_and_checksums_come_back_in_one_read():
    stats = {"a": torch.tensor(1.5), "nan_guard": torch.tensor(float("nan")), "b": torch.tensor(-3.0)}
    sums = {"x_t": torch.tensor(-(2**40) - 7, dtype=torch.int64), "x0": torch.tensor(2**62 + 1, dtype=torch.int64)}
    floats, ints = read_step(stats, sums)
    assert floats["a"] == 1.5 and floats["b"] == -3.0 and np.isnan(floats["nan_guard"])
    assert ints == {"x_t": -(2**40) - 7, "x0": 2**62 + 1}
    assert read_step({}, sums)[1] == ints and read_step(stats, {})[1] == {}


def _journal(run: Path, item: int, x_t: list[str], x0: list[str]) -> None:
    run.mkdir(parents=True, exist_ok=True)
    line = {"item": item, "frame": 0, "files": [], "state": {}, "checksums": {"x_t": x_t, "x0": x0}}
    with open(run / "frames.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def test_divergence_names_the_first_step_that_differs(tmp_path):
    same = [checksum_hex(i) for i in range(8)]
    other = same[:5] + [checksum_hex(100 + i) for i in range(3)]
    _journal(tmp_path / "a", 0, same, same)
    _journal(tmp_path / "b", 0, other, same)
    _journal(tmp_path / "a", 1, same, same)
    _journal(tmp_path / "b", 1, same, same)
    d0, d1 = divergence(tmp_path / "a", tmp_path / "b")
    assert (d0.first_difference, d0.of, d1.first_difference) == (5, "x_t", None)
    assert d0.text() == "item 0: identical through step 4 of frame 0; first difference at step 5 (x_t)"
    assert d1.text() == "item 1: identical at all 8 steps"
    assert divergence(tmp_path / "a", tmp_path / "missing") == []


@pytest.fixture
def planted(monkeypatch):
    """Make the n-th render from now on (1-based; 0: none) add 1e-3 to x_t at step 5."""
    from disco_spec.engine import sampler

    real, state = sampler.ddim_sample, {"calls": 0, "perturb": 0}

    def ddim(*args, **kwargs):
        state["calls"] += 1
        for j, out in enumerate(real(*args, **kwargs)):
            if state["calls"] == state["perturb"] and j == 5:
                out["sample"].add_(1e-3)  # the next steps start from it: the renders part here
            yield out

    monkeypatch.setattr(sampler, "ddim_sample", ddim)
    return state


def _spec_file(tmp_path: Path) -> Path:
    doc = smoke_doc(diffusion={"steps": 10}, init={"skip_steps": 0})
    return write_spec(tmp_path / "smoke10.toml", doc)


@pytest.mark.render
def test_diff_says_where_two_renders_part(tmp_path, planted):
    from disco_spec.run.renderer import render

    spec = _spec_file(tmp_path)
    a = render(spec, tmp_path / "out", progress=False, cache=False)
    b = render(spec, tmp_path / "out", progress=False, cache=False)
    planted["perturb"] = planted["calls"] + 1
    c = render(spec, tmp_path / "out", progress=False, cache=False)
    entry = json.loads((a.run_dir / "frames.jsonl").read_text().splitlines()[0])
    assert len(entry["checksums"]["x_t"]) == len(entry["checksums"]["x0"]) == 10
    code, out, _ = run_cli("diff", str(a.run_dir), str(b.run_dir))
    assert code == 0 and "first difference" not in out
    code, out, _ = run_cli("diff", str(a.run_dir), str(c.run_dir))
    assert code == 1
    assert "where the renders part (step checksums):" in out
    assert "item 0: identical through step 4 of frame 0; first difference at step 5 (x_t)" in out, out
    code, out, _ = run_cli("diff", str(a.run_dir), str(c.run_dir), "--json")
    (d,) = json.loads(out)["divergence"]
    assert d["first_difference"] == 5 and d["of"] == "x_t" and d["steps"] == 10


@pytest.mark.render
@pytest.mark.slow
def test_doctor_says_where_its_two_renders_parted(tmp_path, planted):
    from disco_spec.repro.doctor import run_doctor

    planted["perturb"] = planted["calls"] + 2  # the doctor's second render
    report = run_doctor("cpu", steps=None, spec_path=_spec_file(tmp_path))
    assert any(line.startswith("output ") for line in report.differences)
    assert "where the renders part: item 0: identical through step 4 of frame 0; first difference at step 5 (x_t)" \
        in report.differences
    assert "first difference at step 5" in report.to_text()

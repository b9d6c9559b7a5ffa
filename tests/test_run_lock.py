"""Run folders (issue 14, item 7): one render at a time per run folder (a second exits 2 at once); a run
killed while its models loaded (spec.json, no run_state.json) resumes from scratch; the temp file a
kill leaves mid-write (`.manifest.json.*.tmp`) is gone after the resume."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

from cli_helpers import run_cli, write_spec
from folder_snapshot import unchanged
from disco_spec.errors import SpecError
from disco_spec.run.lock import LOCK_NAME, lock_run_dir

ROOT = Path(__file__).resolve().parent.parent
SMOKE = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())


def small_doc() -> dict:
    doc = copy.deepcopy(SMOKE)
    doc["diffusion"]["steps"] = 6
    return doc


def test_a_second_render_into_a_locked_run_folder_exits_2_at_once(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.toml", small_doc())
    run = tmp_path / "run"
    run.mkdir()
    # another process holds the folder (a lock from a child, as a concurrent render would)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from disco_spec.run.lock import lock_run_dir
            lock = lock_run_dir({str(run)!r})
            print("locked", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        for args in (("--run-dir", str(run)), ("--run-dir", str(run), "--resume")):
            with unchanged(run):
                code, out, err = run_cli("render", str(spec), *args, "-q", "--no-track")
            assert code == 2, err
            assert "--run-dir" in err and "being rendered by another disco-spec" in err and str(holder.pid) in err
        assert time.monotonic() - start < 20  # refused before any model loads
        assert not (run / "frames.jsonl").exists() and not (run / "spec.json").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # the holder is gone: the kernel released its lock; the file it left is reused safely
    with lock_run_dir(run):
        with pytest.raises(SpecError):
            lock_run_dir(run)  # one open file, one lock: even this process cannot take it twice
    assert not (run / LOCK_NAME).exists()


@pytest.mark.render
def test_a_run_killed_while_models_load_resumes_and_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    from disco_spec.run import loop
    from disco_spec.run.renderer import render

    spec = write_spec(tmp_path / "s.toml", small_doc())
    out = tmp_path / "out"
    real = loop.load_models

    def killed(*a, **k):
        raise KeyboardInterrupt  # stands in for kill -9 while the models load

    monkeypatch.setattr(loop, "load_models", killed)
    with pytest.raises(KeyboardInterrupt):
        render(spec, out, progress=False)
    monkeypatch.setattr(loop, "load_models", real)
    run = out / "smoke" / "run-0001"
    assert (run / "spec.json").exists() and not (run / "run_state.json").exists()
    # a kill in the middle of an atomic write leaves its temp file behind
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os
        from disco_spec.atomic import atomic_output
        with atomic_output({str(run / 'manifest.json')!r}) as f:
            f.write(b'{{"half')
            f.flush()
            os._exit(9)
    """)], cwd=ROOT, check=False)
    assert list(run.glob(".manifest.json.*.tmp"))

    # a changed spec is still refused (the spec.json it recorded differs)
    changed = small_doc()
    changed["run"]["set_seed"] = 7
    changed_spec = write_spec(tmp_path / "t.toml", changed)
    with unchanged(out):  # the temp file too: a refusal removes nothing
        code, _, err = run_cli("render", str(changed_spec), "--out", str(out), "--resume", "-q", "--no-track")
    assert code == 2 and "run.set_seed" in err, err
    # the same spec resumes: from scratch, as nothing was rendered
    code, _, err = run_cli("render", str(spec), "--out", str(out), "--resume", "-q", "--no-track")
    assert code == 0, err
    assert (run / "smoke_0000.png").exists() and (run / "run_state.json").exists()
    assert [p.name for p in run.rglob("*") if p.name.endswith(".tmp") or p.name == LOCK_NAME] == []
    code, out_text, err = run_cli("verify", str(run))
    assert code == 0, out_text + err

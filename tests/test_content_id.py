"""The manifest id depends on content only (issue 21): the code is recorded by its sources' SHA-256, not by a
git subprocess that can time out; host name, user, paths and clock stay outside the hashed part; a resume
re-renders a still whose pixels changed (one flipped pixel) back to the original bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from cli_helpers import smoke_spec
from disco_spec.engine.item import deterministic_kernels
from disco_spec.record import environment
from disco_spec.record.manifest import build_hashed, finalize_run, manifest_id
from disco_spec.run.renderer import render

ROOT = Path(__file__).resolve().parent.parent


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_version_in(pythonpath: Path) -> str:
    r = subprocess.run([sys.executable, "-c", "from disco_spec.record.environment import code_version as c; "
                        "import disco_spec, sys; print(disco_spec.__file__, file=sys.stderr); print(c()['source_sha256'])"],
                       env={**os.environ, "PYTHONPATH": str(pythonpath)}, cwd=pythonpath, capture_output=True, text=True,
                       check=True)
    assert r.stderr.strip().startswith(str(pythonpath))  # the copy was imported, not the checkout
    return r.stdout.strip()


def test_the_code_is_recorded_by_its_sources_and_one_edit_changes_it(tmp_path: Path) -> None:
    copy = tmp_path / "site"
    shutil.copytree(ROOT / "disco_spec", copy / "disco_spec", ignore=shutil.ignore_patterns("__pycache__"))
    ours = environment.code_version()
    assert set(ours) == {"disco_spec", "source_sha256"}  # no git commit, no dirty flag in the hashed part
    assert code_version_in(copy) == ours["source_sha256"]  # the same sources anywhere: the same value
    engine = copy / "disco_spec" / "engine" / "guidance.py"
    engine.write_text(engine.read_text(encoding="utf-8").replace("return", "return ", 1), encoding="utf-8")
    assert code_version_in(copy) != ours["source_sha256"]


@pytest.fixture(scope="module")
def still(tmp_path_factory):
    out = tmp_path_factory.mktemp("content-id")
    return render(smoke_spec(diffusion={"steps": 4}, init={"skip_steps": 1}), out / "out", progress=False)


@pytest.mark.render
def test_a_slow_git_gives_the_same_id(still, tmp_path: Path, monkeypatch) -> None:
    real_git = shutil.which("git")
    shim = tmp_path / "bin" / "git"
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\nsleep 4\nexec {real_git} \"$@\"\n")  # past the 3 s a checkout's git may take
    shim.chmod(0o755)
    png = still.run_dir / "smoke_0000.png"
    before = (still.manifest["id"], sha(png))
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    start = time.monotonic()
    with deterministic_kernels(True):  # as render() finalises (the manifest records these settings)
        manifest = finalize_run(still)
    assert (manifest["id"], sha(png)) == before  # the id and the PNG's bytes
    assert manifest["volatile"]["code_checkout"]["git_commit"] is None  # git did time out (outside the hash)
    assert time.monotonic() - start >= 3


@pytest.mark.render
def test_the_hashed_part_ignores_host_user_paths_and_clock(still, tmp_path: Path, monkeypatch) -> None:
    with deterministic_kernels(True):
        hashed = build_hashed(still)
    assert manifest_id(hashed) == still.manifest["id"]
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(still.run_dir, moved)
    monkeypatch.setattr(socket, "gethostname", lambda: "another-host.example")
    monkeypatch.setattr(socket, "getfqdn", lambda *a: "another-host.example")
    for var in ("USER", "LOGNAME", "USERNAME"):
        monkeypatch.setenv(var, "someone-else")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 86400 * 365)
    monkeypatch.setattr(time, "time_ns", lambda: int((real_time() + 86400 * 365) * 1e9))
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "someone-else")
    with deterministic_kernels(True):
        again = build_hashed(dataclasses.replace(still, run_dir=moved))
    assert again == hashed
    assert manifest_id(again) == still.manifest["id"]


@pytest.mark.render
def test_a_still_with_one_flipped_pixel_is_rendered_again_to_its_bytes(tmp_path: Path) -> None:
    first = render(smoke_spec(diffusion={"steps": 4}, init={"skip_steps": 1}), tmp_path / "out", progress=False)
    png = first.run_dir / "smoke_0000.png"
    want = sha(png)
    with Image.open(png) as im:  # a readable PNG with every text chunk kept: only one pixel differs
        text = dict(im.text)
        img = im.convert("RGB")
    r, g, b = img.getpixel((5, 7))
    img.putpixel((5, 7), (255 - r, g, b))
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_itxt(k, v, zip=True)
    img.save(png, pnginfo=info)
    assert sha(png) != want
    again = render(smoke_spec(diffusion={"steps": 4}, init={"skip_steps": 1}), tmp_path / "out", progress=False,
                   resume=True)
    assert [o.path for o in again.outputs] == ["smoke_0000.png"]
    assert sha(png) == want

"""A run folder from a stranger (issue 21, items 1 and 8): links at every path disco-spec writes, forged
journals and states, deep and huge JSON in every JSON file of a run folder. Each is refused (exit 2, naming
the path) before anything is written; a victim folder outside is checked byte for byte, and so is the run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cli_helpers import run_cli, small_smoke_doc, write_spec
from disco_spec.atomic import (UnsafeRunFolder, atomic_write_bytes, guard_run_folder, make_dirs, move, open_append,
                               unguard_run_folder)
from disco_spec.errors import SpecError
from disco_spec.run.lock import LOCK_NAME, lock_run_dir
from folder_snapshot import snapshot, unchanged

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def victim(tmp_path: Path):
    v = tmp_path / "victim"
    (v / "sub").mkdir(parents=True)
    (v / "keep.png").write_bytes(b"victim bytes")
    (v / "sub" / "0001.jpg").write_bytes(b"victim frame")
    before = snapshot(v)
    yield v
    assert snapshot(v) == before, "a write escaped the run folder"


# ------------------------------------------------------------------------------- the boundary itself


def test_a_linked_lock_file_is_refused_and_its_target_untouched(tmp_path: Path, victim: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).symlink_to(victim / "keep.png")
    with pytest.raises(UnsafeRunFolder) as exc, unchanged(run):
        lock_run_dir(run)
    assert exc.value.path == str(run / LOCK_NAME) and "symbolic link" in str(exc.value)
    (run / LOCK_NAME).unlink()
    os.link(victim / "keep.png", run / LOCK_NAME)  # a hard link: truncating it would change the victim
    with pytest.raises(UnsafeRunFolder, match="more than one name"):
        lock_run_dir(run)
    (run / LOCK_NAME).unlink()
    os.mkfifo(run / LOCK_NAME)  # a FIFO: refused at once, never waited on
    with pytest.raises(UnsafeRunFolder, match="FIFO"):
        lock_run_dir(run)


@pytest.mark.parametrize("sub", ["partials", "retained", "state", "video_frames"])
def test_a_folder_linked_out_after_the_lock_is_never_written_through(tmp_path: Path, victim: Path, sub: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with lock_run_dir(run):  # guarded from here on; the link appears while the render runs
        (run / sub).symlink_to(victim / "sub")
        with pytest.raises(UnsafeRunFolder) as exc:
            atomic_write_bytes(run / sub / "0001.jpg", b"overwritten")
        assert exc.value.path == str(run / sub)
        with pytest.raises(UnsafeRunFolder):
            make_dirs(run / sub / "deeper")
        (run / "x.png").write_bytes(b"mine")
        with pytest.raises(UnsafeRunFolder):
            move(run / "x.png", run / sub / "x.png")
        with pytest.raises(UnsafeRunFolder):
            with open_append(run / sub / "0001.jpg") as f:
                f.write("appended")
    assert (run / "x.png").read_bytes() == b"mine"


def test_a_linked_or_hard_linked_file_is_replaced_or_refused_never_written_through(tmp_path: Path,
                                                                                   victim: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with lock_run_dir(run):
        (run / "smoke_0000.png").symlink_to(victim / "keep.png")
        with pytest.raises(UnsafeRunFolder):
            atomic_write_bytes(run / "smoke_0000.png", b"new")
        os.link(victim / "keep.png", run / "frames.jsonl")
        with pytest.raises(UnsafeRunFolder, match="hard link"):
            with open_append(run / "frames.jsonl") as f:
                f.write("{}\n")
        os.link(victim / "keep.png", run / "spec.json")
        atomic_write_bytes(run / "spec.json", b"{}")  # a rename replaces the name, the victim keeps its bytes
        assert (run / "spec.json").read_bytes() == b"{}"


def test_unguarded_writes_are_unchanged(tmp_path: Path) -> None:
    guard_run_folder(tmp_path / "elsewhere")
    unguard_run_folder(tmp_path / "elsewhere")
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"1")  # not a run folder: plain atomic write, folders made
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"1"


# ------------------------------------------------------------------------- whole renders, via the CLI


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("hostile")
    spec = write_spec(tmp / "s.toml", small_smoke_doc(saving={"intermediate_saves": [1]}))
    code, _, err = run_cli("render", str(spec), "--run-dir", str(tmp / "run"), "-q", "--no-track")
    assert code == 0, err
    return spec, tmp / "run"


def _copy(finished: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    spec, run = finished
    out = tmp_path / "out" / "run"
    shutil.copytree(run, out)
    return spec, out


LINKED = ["partials", "retained", "state", "video_frames", LOCK_NAME, "spec.json", "plan.json", "frames.jsonl",
          "run_state.json", "manifest.json", "smoke_0000.png", "progress.png"]


@pytest.mark.render
@pytest.mark.parametrize("name", LINKED)
def test_a_run_folder_holding_a_link_where_disco_spec_writes_is_refused(finished, tmp_path: Path, victim: Path,
                                                                        name: str) -> None:
    spec, run = _copy(finished, tmp_path)
    target = victim / ("sub" if name in ("partials", "retained", "state", "video_frames") else "keep.png")
    if (run / name).is_dir():
        shutil.rmtree(run / name)
    else:
        (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(target)
    for args in (["--resume"], []):
        with unchanged(tmp_path / "out"):
            code, _, err = run_cli("render", str(spec), "--run-dir", str(run), *args, "-q", "--no-track")
        assert code == 2, err
        if args:  # (without --resume, the finished run is refused first: its manifest.json)
            assert str(run / name) in err and "symbolic link" in err, err


@pytest.mark.render
def test_a_finished_run_is_not_rendered_over_without_resume(finished, tmp_path: Path) -> None:
    spec, run = _copy(finished, tmp_path)
    with unchanged(tmp_path / "out"):
        code, _, err = run_cli("render", str(spec), "--run-dir", str(run), "-q", "--no-track")
    assert code == 2 and "finished run" in err and "--resume" in err, err


FORGED = {
    "run_state.json": [DEEP, "[1, 2]", '{"items": "all", "spec_sha256": "x"}', '{"a": 1, "a": 2}',
                       '{"n": ' + "9" * 5000 + "}"],
    "spec.json": [DEEP, "\ufeff{}", "[]", '{"run": 1, "run": 2}'],
    "inputs.json": [DEEP, '{"frames": [{"path": "../../victim/keep.png", "sha256": "x"}]}', "[]"],
}


@pytest.mark.render
@pytest.mark.parametrize("name,text", [(n, t) for n, ts in FORGED.items() for t in ts],
                         ids=[f"{n}-{i}" for n, ts in FORGED.items() for i in range(len(ts))])
def test_forged_and_deep_json_in_a_run_folder_is_exit_2_naming_the_file(finished, tmp_path: Path, name: str,
                                                                        text: str) -> None:
    spec, run = _copy(finished, tmp_path)
    (run / name).write_text(text, encoding="utf-8")
    with unchanged(tmp_path / "out"):
        code, _, err = run_cli("render", str(spec), "--run-dir", str(run), "--resume", "-q", "--no-track")
    assert code == 2 and str(run / name) in err and "internal error" not in err, err
    code, out, err = run_cli("verify", str(run))
    assert code in (0, 1, 2) and "internal error" not in err, out + err


@pytest.mark.render
def test_a_deep_plan_json_is_not_read_by_a_resume_and_is_written_again(finished, tmp_path: Path) -> None:
    spec, run = _copy(finished, tmp_path)
    want = (run / "plan.json").read_bytes()
    (run / "plan.json").write_text(DEEP)  # the journal's plan hash decides; plan.json is an output
    code, _, err = run_cli("render", str(spec), "--run-dir", str(run), "--resume", "-q", "--no-track")
    assert code == 0, err
    assert (run / "plan.json").read_bytes() == want


@pytest.mark.render
def test_a_forged_journal_naming_files_outside_is_ignored_and_deep_lines_skipped(finished, tmp_path: Path,
                                                                                 victim: Path) -> None:
    spec, run = _copy(finished, tmp_path)
    good = (run / "frames.jsonl").read_text()
    forged = json.dumps({"item": 0, "frame": 0, "files": [{"path": "../../victim/keep.png", "kind": "image",
                                                              "sha256": "0" * 64}], "state": {}})
    (run / "frames.jsonl").write_text(DEEP + "\n" + forged + "\n")
    (run / "smoke_0000.png").unlink()
    code, _, err = run_cli("render", str(spec), "--run-dir", str(run), "--resume", "-q", "--no-track")
    assert code == 0, err  # the bad lines are not frames: item 0 is rendered again, inside the run folder
    assert (run / "smoke_0000.png").is_file()
    assert good.splitlines()[0].split('"sha256":')[0] in (run / "frames.jsonl").read_text()


@pytest.mark.render
def test_deep_json_in_a_png_text_chunk_is_not_a_crash(finished, tmp_path: Path) -> None:
    from disco_spec.record import pngmeta

    spec, run = _copy(finished, tmp_path)
    png = run / "smoke_0000.png"
    pngmeta.set_text(png, {"disco-spec:spec": DEEP, "disco-spec:provenance": DEEP})
    for cmd in (["inspect", str(png)], ["rebuild", str(png), "--no-fetch"]):
        code, out, err = run_cli(*cmd)
        assert code in (0, 1, 2) and "internal error" not in err and "RecursionError" not in err, (cmd, out + err)

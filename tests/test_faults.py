"""Faults say what happened (issue 21, item 6): Ctrl-C and SIGTERM leave a resumable run and say how to
continue; a full disk or a read-only folder is exit 1 naming the path; JSON with duplicate keys, a BOM, a
binary file given as a spec are named for what they are (exit 2)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from cli_helpers import run_cli, small_smoke_doc, write_spec

ROOT = Path(__file__).resolve().parent.parent


def _journal_lines(run: Path) -> int:
    try:
        return sum(1 for ln in (run / "frames.jsonl").read_text().splitlines() if ln.strip())
    except FileNotFoundError:
        return 0


def _render_until_next_image(args: list[str], run: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "disco_spec.cli", "render", *args, "-q", "--no-track"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    start = _journal_lines(run)  # a resume rewrites the journal, then appends: wait for one more image
    while _journal_lines(run) <= start:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no image within 120 s"
        time.sleep(0.05)
    return proc


@pytest.mark.render
@pytest.mark.slow
def test_ctrl_c_and_sigterm_leave_a_resumable_run_and_say_how_to_continue(tmp_path: Path) -> None:
    doc = small_smoke_doc(run={"n_batches": 4})
    doc["diffusion"]["steps"] = 30  # slow enough to be stopped between images
    spec = write_spec(tmp_path / "s.toml", doc)
    run = tmp_path / "run"
    for sig, code, word in ((signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")):
        args = [str(spec), "--run-dir", str(run)] + (["--resume"] if sig == signal.SIGTERM else [])
        proc = _render_until_next_image(args, run)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == code, err
        assert word in err and "--resume" in err and str(run) in err and "internal error" not in err, err
        assert not (run / ".disco-spec.lock").exists()  # the lock was released on the way out
        assert not list(run.rglob("*.tmp"))  # no half-written file left
    kept = _journal_lines(run)
    assert 1 <= kept < 4
    code, out, err = run_cli("render", str(spec), "--run-dir", str(run), "--resume", "-q", "--no-track")
    assert code == 0, err
    code, out, err = run_cli("verify", str(run))
    assert code == 0, out + err
    assert len(list(run.glob("smoke_*.png"))) == 4


@pytest.mark.render
@pytest.mark.parametrize("err_no", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_full_disk_or_read_only_folder_is_exit_1_naming_the_path(tmp_path: Path, monkeypatch, err_no) -> None:
    from disco_spec.run import loop

    def failing(img, dest, text=None):
        raise OSError(err_no, os.strerror(err_no), str(dest))

    monkeypatch.setattr(loop, "write_png_atomic", failing)
    spec = write_spec(tmp_path / "s.toml", small_smoke_doc())
    code, out, err = run_cli("render", str(spec), "--out", str(tmp_path / "out"), "-q", "--no-track")
    assert code == 1, err
    run = tmp_path / "out" / "smoke" / "run-0001"
    assert f"cannot write {run / 'smoke_0000.png'}" in err and os.strerror(err_no) in err, err
    assert "--resume" in err and "internal error" not in err and "Traceback" not in err


def test_json_duplicate_keys_are_refused_like_toml(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"schema_version": 1, "diffusion": {"steps": 10}, "diffusion": {"eta": 0.5}}')
    code, _, err = run_cli("validate", str(path))
    assert code == 2 and "'diffusion' appears twice" in err, err


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_byte_order_mark_is_named(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bom{suffix}"
    text = "schema_version = 1\n" if suffix == ".toml" else '{"schema_version": 1}'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    code, _, err = run_cli("validate", str(path))
    assert code == 2 and "byte-order mark (BOM)" in err and "Invalid statement" not in err, err


def test_a_picture_given_as_a_spec_or_to_diff_is_named_for_what_it_is(tmp_path: Path) -> None:
    gif = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    code, _, err = run_cli("validate", str(gif))
    assert code == 2 and "a GIF image, not a spec" in err, err
    code, _, err = run_cli("diff", str(gif), str(gif))
    assert code == 2 and "GIF image" in err and "internal error" not in err, err
    jpg = tmp_path / "s.toml"
    Image.new("RGB", (4, 4)).save(jpg, format="JPEG")
    code, _, err = run_cli("render", str(jpg), "--out", str(tmp_path / "out"), "-q", "--no-track")
    assert code == 2 and "a JPEG image, not a spec" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # (importing the tracker and resolving a plan: a few seconds on a loaded machine)
def test_a_tracking_server_that_trickles_stops_tracking_within_the_deadline_with_one_warning() -> None:
    import io
    import threading
    from disco_spec.tracking.tracker import MlflowTracker

    never = threading.Event()

    class Trickling:  # every call waits (a server answering one byte every few seconds, forever)
        tracking_uri = "http://127.0.0.1:9"

        def __getattr__(self, name):
            return lambda *a, **k: never.wait(30)

    stream = io.StringIO()
    tracker = MlflowTracker(client=Trickling(), experiment="x", stream=stream, system_metrics=False)
    tracker.deadline_s = 0.5
    from cli_helpers import smoke_spec
    from disco_spec.run.prepare import prepare
    from disco_spec.run.records import RenderResult

    ready = prepare(smoke_spec())
    result = RenderResult(run_dir=Path("run"), spec=ready.spec, spec_document=ready.document, plan=ready.plan)
    start = time.monotonic()
    tracker.on_start(result)
    tracker.on_end(result)
    tracker.on_error(result, RuntimeError("x"))
    assert time.monotonic() - start < 3  # not 30 s per call
    assert stream.getvalue().count("MLflow tracking disabled") == 1
    assert "tracking deadline" in stream.getvalue() and "kept in run" in stream.getvalue()
    never.set()

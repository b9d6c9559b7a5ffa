"""The recipe where other tools look: each PNG's A1111-style `parameters` chunk, the mp4's container metadata
(what ffmpeg/ffprobe show), both read back by `inspect`; the video's content hash leaves its metadata out."""

from __future__ import annotations

import json
import re
import struct
import subprocess
from pathlib import Path

import pytest

from cli_helpers import run_cli, small_smoke_doc, write_spec
from disco_spec.record import mp4meta, pngmeta
from disco_spec.record.parameters import parse_parameters


def test_parameters_read_back_as_a1111_writes_them():
    """A real A1111 string (the form its web UI writes) and quoting of values with commas."""
    text = ("masterpiece, a lighthouse at dusk\nNegative prompt: blurry, lowres\n"
            'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: 6ce0161689, '
            'Model: v1-5-pruned-emaonly, Lora hashes: "add_detail: 7c6bad76eb54, more: 1a2b", Version: v1.6.0')
    parsed = parse_parameters(text)
    assert parsed["prompt"] == "masterpiece, a lighthouse at dusk"
    assert parsed["negative_prompt"] == "blurry, lowres"
    assert parsed["settings"]["Seed"] == "1234" and parsed["settings"]["Size"] == "512x768"
    assert parsed["settings"]["Lora hashes"] == "add_detail: 7c6bad76eb54, more: 1a2b"
    assert parse_parameters("just a prompt")["settings"] == {}


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("recipe")
    doc = small_smoke_doc(run={"display_rate": 100}, animation={"animation_mode": "2D", "max_frames": 3},
                          video={"skip_video_for_run_all": False, "init_frame": 0})
    doc["prompts"]["text_prompts"]["0"].append("blurry, dark:-0.5")
    spec = write_spec(base / "anim.toml", doc)
    code, _, err = run_cli("render", str(spec), "--out", str(base / "out"), "--no-track", "--quiet")
    assert code == 0, err
    run = base / "out" / "smoke" / "run-0001"
    return {"run": run, "manifest": json.loads((run / "manifest.json").read_text()), "base": base}





@pytest.mark.render
def test_each_png_carries_a_parameters_chunk(video_run):
    from PIL import Image

    run, mid = video_run["run"], video_run["manifest"]["id"]
    png = run / "smoke_0002.png"
    with Image.open(png) as im:  # what A1111's "PNG Info" and PIL-based readers see
        text = im.info["parameters"]
    first, negative, settings = text.split("\n")
    assert first == "A beautiful painting of a singular lighthouse, yellow color scheme:0.5"
    assert negative == "Negative prompt: blurry, dark:-0.5"
    assert "Steps: 6, Sampler: ddim, CLIP guidance scale: 5000, Seed: 44, Size: 64x64" in settings
    assert "Frame: 2" in settings and f"Manifest: {mid}" in settings and "Model: tiny-uncond" in settings
    # stored uncompressed: readers that skip compressed text still find it
    raw = [d for t, d in pngmeta.read_chunks(png) if t in (b"tEXt", b"iTXt") and d.startswith(b"parameters\0")]
    assert len(raw) == 1 and raw[0][len(b"parameters\0")] == 0
    code, out, err = run_cli("inspect", str(png), "--json")
    assert code == 0, err
    parsed = json.loads(out)["parameters"]
    assert parsed["settings"]["Seed"] == "44" and parsed["settings"]["Manifest"] == mid
    assert parsed["negative_prompt"] == "blurry, dark:-0.5"
    code, out, _ = run_cli("inspect", str(png))
    assert "parameters (A1111 form" in out and re.search(r"Seed\s+44", out)


@pytest.mark.render
def test_the_mp4_carries_the_spec_and_manifest_id(video_run):
    from disco_spec.animation.video import ffmpeg_exe

    run, manifest = video_run["run"], video_run["manifest"]
    mp4 = run / "smoke.mp4"
    # ffmpeg (ffprobe's demuxer) shows the metadata, and still decodes every frame
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(mp4), "-f", "null", "-"], capture_output=True,
                           text=True)
    assert probe.returncode == 0, probe.stderr
    assert re.search(rf"disco-spec:manifest-id\s*: {manifest['id']}", probe.stderr)
    assert "disco-spec:spec" in probe.stderr and re.search(r"frame=\s*3\b", probe.stderr)
    code, out, err = run_cli("inspect", str(mp4), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["manifest_id"] == manifest["id"]
    assert info["spec"] == json.loads((run / "spec.json").read_text())
    # the manifest's content hash of the video leaves the metadata out; verify checks the stamped file
    rec = next(o for o in manifest["hashed"]["outputs"] if o["path"] == "smoke.mp4")
    assert rec["pixels_sha256"] == info["media_sha256"] != info["file_sha256"]
    assert run_cli("verify", str(run))[0] == 0


@pytest.mark.render
def test_video_hash_ignores_metadata_and_rebuild_matches(video_run, tmp_path):
    from disco_spec.animation.video import ffmpeg_exe

    mp4 = video_run["run"] / "smoke.mp4"
    copy = tmp_path / "restamped.mp4"  # other metadata over the same stream
    copy.write_bytes(mp4.read_bytes())
    assert mp4meta.stamp(copy, {"title": "holiday"}) and mp4meta.read_metadata(copy) == {"title": "holiday"}
    assert mp4meta.media_sha256(copy) == mp4meta.media_sha256(mp4)
    assert pngmeta.file_sha256(copy) != pngmeta.file_sha256(mp4)
    # ffmpeg still reads the restamped file
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(copy), "-f", "null", "-"], capture_output=True, text=True)
    assert probe.returncode == 0 and re.search(r"title\s*: holiday", probe.stderr), probe.stderr
    # a change to the encoded frames changes it
    raw = bytearray(mp4.read_bytes())
    at = raw.index(b"mdat") + 100
    raw[at] ^= 0xFF
    copy.write_bytes(bytes(raw))
    assert mp4meta.media_sha256(copy) != mp4meta.media_sha256(mp4)
    code, out, err = run_cli("rebuild", str(video_run["run"]), "--quiet")
    assert code == 0, out + err
    assert "smoke.mp4: identical" in out


def _mp4(boxes: list[bytes]) -> bytes:
    return b"".join(boxes)


def _box(t: bytes, payload: bytes, size: int | None = None) -> bytes:
    return struct.pack(">I4s", 8 + len(payload) if size is None else size, t) + payload


@pytest.mark.parametrize("data, why", [
    (_box(b"ftyp", b"isom\0\0\0\0") + _box(b"mdat", b"x" * 10), "no moov box"),
    (_box(b"ftyp", b"isom\0\0\0\0") + _box(b"moov", b"", size=1 << 30), "bad size"),
    (_box(b"ftyp", b"isom\0\0\0\0") + b"\0\0\0\x01moov" + struct.pack(">Q", 1 << 62), "bad size"),
    (_box(b"ftyp", b"isom\0\0\0\0") + _box(b"moov", _box(b"udta", _box(b"meta", b"", size=999))), "bad size"),
    (_box(b"ftyp", b"isom\0\0\0\0") + b"\0\0\0\x03", "truncated"),
])
def test_hostile_mp4s_are_bad_input(tmp_path, data, why):
    f = tmp_path / "x.mp4"
    f.write_bytes(data)
    code, out, err = run_cli("inspect", str(f))
    assert code == 2 and why in err and "Traceback" not in err, err


def test_an_mp4_without_our_metadata_says_so(tmp_path):
    f = tmp_path / "plain.mp4"
    f.write_bytes(_box(b"ftyp", b"isom\0\0\0\0") + _box(b"mdat", b"abc") + _box(b"moov", _box(b"mvhd", b"\0" * 100)))
    code, out, err = run_cli("inspect", str(f))
    assert code == 0 and "no disco-spec metadata" in out
    assert mp4meta.stamp(f, {"k": "v"}) and mp4meta.read_metadata(f) == {"k": "v"}


@pytest.mark.parametrize("spec_text", ["[" * 100_000 + "]" * 100_000, '{"a": 1, "a": 2}', "not json"])
def test_a_forged_spec_in_an_mp4_is_read_through_the_bounded_reader(tmp_path, spec_text):
    f = tmp_path / "forged.mp4"
    f.write_bytes(_box(b"ftyp", b"isom\0\0\0\0") + _box(b"mdat", b"abc") + _box(b"moov", _box(b"mvhd", b"\0" * 100)))
    assert mp4meta.stamp(f, {mp4meta.KEY_SPEC: spec_text, mp4meta.KEY_MANIFEST_ID: "0" * 64})
    code, out, err = run_cli("inspect", str(f))
    assert code == 0 and "Traceback" not in err, err  # as a PNG's forged chunk: no spec shown, nothing else
    assert mp4meta.video_info(f)["spec"] is None


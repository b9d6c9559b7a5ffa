"""DD's other MiDaS choices: dpt_hybrid, dpt_hybrid_nyu, midas_v21, midas_v21_small (issue 15, item 7).

Their real key layouts are checked against upstream-generated manifests in test_key_manifests.py;
here: the registry entries, the unpinned-hash handling, DD's pre-processing for each, the tiny
variants end to end, and the arithmetic details in which the architectures differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from disco_spec import errors
from disco_spec.models import depth_midas, resolve
from disco_spec.models.depth import estimate_depth, load_depth_models
from disco_spec.models.depth_midas import minimal_resize_size
from disco_spec.models.depth_midas_conv import _ResidualConvUnit, _ResidualConvUnitCustom
from disco_spec.models.registry import TINY_PINS, get_entry

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("cache")

NEW_REAL = ("dpt_hybrid", "dpt_hybrid_nyu", "midas_v21", "midas_v21_small")
NEW_TINY = ("tiny-dpt-hybrid", "tiny-midas-v21", "tiny-midas-v21-small")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _image(h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) * 127 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Registry: DD's file names and settings, MiDaS' URLs, the published hash prefixes
# ---------------------------------------------------------------------------------------------

# DD 5.2's default_models file names and init_midas_depth_model settings (net size, resize, normalisation).
DD_SETTINGS = {
    "dpt_hybrid": ("dpt_hybrid-midas-501f0c75.pt", 384, "minimal", ((0.5,) * 3, (0.5,) * 3)),
    "dpt_hybrid_nyu": ("dpt_hybrid_nyu-2ce69ec7.pt", 384, "minimal", ((0.5,) * 3, (0.5,) * 3)),
    "midas_v21": ("midas_v21-f6b98070.pt", 384, "upper_bound", IMAGENET),
    "midas_v21_small": ("midas_v21_small-70d6b9c8.pt", 256, "upper_bound", IMAGENET),
}


@pytest.mark.parametrize("name", NEW_REAL)
def test_registry_entry_has_dds_file_name_and_settings(name):
    e = get_entry(name)
    filename, net, mode, (mean, std) = DD_SETTINGS[name]
    assert e.role == "depth" and e.filename == filename and not e.tiny
    assert (e.config["net_size"], e.config["resize_mode"]) == (net, mode)
    assert (tuple(e.config["mean"]), tuple(e.config["std"])) == (mean, std)
    assert e.config.get("non_negative") is True
    # Unpinned: nobody publishes the full SHA-256; the prefix in the file name is checked instead.
    assert e.sha256 == "" and not e.pinned and e.sha256_prefix == filename.rsplit("-", 1)[1][:8]
    assert all(u.startswith("https://github.com/") and u.endswith("/" + filename) for u in e.urls) and e.urls


def test_hybrid_entries_are_the_same_architecture_as_dd_builds_them():
    a, b = get_entry("dpt_hybrid").config, get_entry("dpt_hybrid_nyu").config
    assert dict(a) == dict(b)  # DD: DPTDepthModel(backbone="vitb_rn50_384", non_negative=True) for both
    assert tuple(a["hooks"]) == (0, 1, 8, 11) and tuple(a["resnet_layers"]) == (3, 4, 9)


@pytest.mark.parametrize("name", NEW_TINY)
def test_tiny_entries_are_pinned(name):
    e = get_entry(name)
    assert e.tiny and e.pinned and (e.sha256, e.size) == TINY_PINS[name]


_CHILD = """
import hashlib, json
from disco_spec.models.tiny import tiny_bytes
print(json.dumps({n: [hashlib.sha256(b).hexdigest(), len(b)] for n in %r for b in [tiny_bytes(n)]}))
""" % (NEW_TINY,)


@pytest.mark.slow
def test_tiny_bytes_in_a_fresh_process_equal_the_pins(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DISCO_SPEC_CACHE": str(tmp_path / "c"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", _CHILD], env=env, capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert {n: tuple(v) for n, v in got.items()} == {n: TINY_PINS[n] for n in NEW_TINY}


# ---------------------------------------------------------------------------------------------
# Unpinned entries: prefix check, full hash recorded, bad bytes never kept
# ---------------------------------------------------------------------------------------------


def _unpinned_entry_for(data: bytes, name="dpt_hybrid"):
    # The real entry with the prefix replaced by that of `data` (a real 32-bit prefix cannot be forged here).
    return dataclasses.replace(get_entry(name), sha256_prefix=hashlib.sha256(data).hexdigest()[:8])


def test_unpinned_file_with_the_published_prefix_resolves_to_its_full_hash(cache):
    data = b"stand-in for a MiDaS checkpoint"
    entry = _unpinned_entry_for(data)
    path = resolve.entry_path(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    w = resolve.resolve_entry(entry, fetch=False)
    assert w.sha256 == hashlib.sha256(data).hexdigest() and w.size == len(data) and w.name == "dpt_hybrid"


def test_unpinned_file_with_another_prefix_is_refused(cache):
    entry = get_entry("midas_v21")
    path = resolve.entry_path(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not the published file")
    with pytest.raises(errors.WeightsHashMismatch, match="f6b98070... \\(published prefix\\)"):
        resolve.resolve_entry(entry, fetch=False)
    ok, message = resolve.verify_model("midas_v21")
    assert not ok and "published" in message


def test_unpinned_download_with_wrong_bytes_is_deleted(cache, monkeypatch):
    entry = get_entry("midas_v21_small")
    served = []

    def fake_download(urls, dest, sha256, what):
        served.append((list(urls), sha256))
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(b"an HTML error page")
        return Path(dest)

    monkeypatch.setattr(resolve, "download", fake_download)
    with pytest.raises(errors.WeightsHashMismatch):
        resolve.resolve_entry(entry, fetch=True)
    assert served == [(list(entry.urls), None)] and not resolve.entry_path(entry).exists()


# ---------------------------------------------------------------------------------------------
# DD's pre-processing: "upper_bound" resizing and ImageNet normalisation for v2.1
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("w,h,net,expected", [
    (1280, 768, 384, (384, 224)),   # scale min(0.3, 0.5) = 0.3: height 230.4 -> 224
    (512, 512, 384, (384, 384)),
    (640, 360, 384, (384, 224)),    # 0.6: height 216 = 6.75 * 32 -> 224
    (300, 200, 384, (384, 256)),    # 1.28 (upscaling): 256
    (1280, 768, 256, (256, 160)),   # midas_v21_small at DD's default size: 0.2 -> 153.6 -> 160
    (100, 50, 256, (256, 128)),
    (768, 1280, 256, (160, 256)),
])
def test_upper_bound_resize(w, h, net, expected):
    assert minimal_resize_size(w, h, net, net, 32, "upper_bound") == expected


def test_upper_bound_never_exceeds_the_network_size():
    checked = 0
    for w in range(33, 2000, 37):
        for h in (40, 300, 1000, 1999):
            try:
                nw, nh = minimal_resize_size(w, h, 256, 256, 32, "upper_bound")
            except errors.ModelError as e:  # a side rounding to 0 (MiDaS would crash in OpenCV)
                assert "too elongated" in str(e) and max(w, h) / min(w, h) > 256 / 16
                continue
            assert nw <= 256 and nh <= 256 and nw % 32 == 0 and nh % 32 == 0 and 256 in (nw, nh)
            checked += 1
    assert checked > 150


def test_unknown_resize_mode_is_refused():
    with pytest.raises(errors.ModelError, match="resize mode"):
        minimal_resize_size(100, 100, 384, 384, 32, "lower_bound")


def test_v21_input_uses_imagenet_normalisation_and_upper_bound():
    import cv2

    img = _image(48, 80, seed=3)
    cfg = get_entry("tiny-midas-v21").config  # net 64: scale min(0.8, 1.33) -> 64 x 38.4 -> 64 x 32
    x = depth_midas.midas_input(img, cfg)
    assert x.shape == (1, 3, 32, 64)
    ref = cv2.resize(img.astype(np.float64) / 255.0, (64, 32), interpolation=cv2.INTER_CUBIC)
    ref = (ref - np.array(IMAGENET[0])) / np.array(IMAGENET[1])
    np.testing.assert_allclose(x[0].numpy(), ref.transpose(2, 0, 1).astype(np.float32), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Tiny variants end to end
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_TINY)
def test_tiny_variant_estimates_depth(cache, name):
    models = load_depth_models({"midas_depth_model": name, "midas_weight": 1.0}, "cpu")
    assert models.adabins is None and models.midas_weights.sha256 == TINY_PINS[name][0]
    assert not models.midas.model.training and not any(p.requires_grad for p in models.midas.model.parameters())
    img = _image(40, 56, seed=1)
    d = estimate_depth(models, img, 1.0, "cpu")
    assert d.shape == (40, 56) and d.dtype == torch.float32 and torch.isfinite(d).all() and float(d.std()) > 0
    with torch.no_grad():  # non_negative=True: the head ends in a ReLU
        raw = models.midas.model(depth_midas.midas_input(img, get_entry(name).config))
    assert raw.shape == (1, 32, 64) and float(raw.min()) >= 0 and float(raw.max()) > 0
    assert torch.equal(d, estimate_depth(models, img.copy(), 1.0, "cpu"))
    with pytest.raises(errors.ModelError, match="multiples of 32"):
        models.midas.model(torch.zeros(1, 3, 48, 64))


def test_tiny_hybrid_taps_equal_timm_intermediates(cache):
    model = load_depth_models({"midas_depth_model": "tiny-dpt-hybrid", "midas_weight": 1.0}, "cpu").midas.model
    vit = model.pretrained.model
    x = torch.from_numpy(_image(64, 64, 2).transpose(2, 0, 1).astype(np.float32) / 127.5 - 1)[None]
    with torch.no_grad():
        stage_maps, tokens = model._tokens_at_hooks(x)
        trunk_maps = vit.patch_embed.backbone.forward_intermediates(x, indices=[1, 2], intermediates_only=True)
        theirs = vit.forward_intermediates(x, indices=list(model.hooks), output_fmt="NLC", intermediates_only=True,
                                           return_prefix_tokens=True)
    # timm counts the stem as feature 0, so stages 0 and 1 are its features 1 and 2.
    assert [m.shape[1] for m in stage_maps] == [128, 128] and [m.shape[-1] for m in stage_maps] == [16, 8]
    for a, b in zip(stage_maps, trunk_maps):
        torch.testing.assert_close(a, b)
    for a, (patches, prefix) in zip(tokens, theirs):
        torch.testing.assert_close(a[:, 1:], patches)
        torch.testing.assert_close(a[:, :1], prefix)


def test_midas_v21_residual_unit_adds_relu_of_its_input():
    # MiDaS v2.1's ReLU(inplace=True) rewrites the unit's input, so the skip adds relu(x): with zero
    # convs the unit returns relu(x). DPT's and the small model's units add x itself.
    x = torch.linspace(-2, 2, 2 * 4 * 3 * 3).reshape(2, 4, 3, 3)
    unit, custom = _ResidualConvUnit(4), _ResidualConvUnitCustom(4)
    for m in (unit, custom):
        for p in m.parameters():
            torch.nn.init.zeros_(p)
    with torch.no_grad():
        assert torch.equal(unit(x), torch.relu(x))
        assert torch.equal(custom(x), x)

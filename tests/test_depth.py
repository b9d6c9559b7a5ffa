"""Depth models: real checkpoint layouts (structural), tiny models end to end, DD's sizing and mixing."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from disco_spec import errors
from disco_spec.models import architectures, depth, depth_midas, tiny
from disco_spec.models.depth import estimate_depth, load_adabins, load_depth_models, load_midas
from disco_spec.models.depth_adabins import adabins_input_size
from disco_spec.models.depth_midas import minimal_resize_size
from disco_spec.models.registry import TINY_PINS, get_entry
from disco_spec.models.resolve import resolve_weights

ROOT = Path(__file__).resolve().parents[1]
TINY = {"midas_depth_model": "tiny-midas", "adabins_model": "tiny-adabins"}


# Each module gets its own model cache (conftest: module_cache / cache).
pytestmark = pytest.mark.usefixtures("cache")


@pytest.fixture(scope="module")
def tiny_models(module_cache):
    old = os.environ.get("DISCO_SPEC_CACHE")
    os.environ["DISCO_SPEC_CACHE"] = str(module_cache)
    try:
        return load_depth_models({**TINY, "midas_weight": 0.3}, "cpu")
    finally:
        if old is None:
            os.environ.pop("DISCO_SPEC_CACHE", None)
        else:
            os.environ["DISCO_SPEC_CACHE"] = old


def _image(h=40, w=56, seed=0):
    # A smooth gradient plus noise: non-square, like a frame.
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) * 127 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Key layouts of the real checkpoints, written out from the upstream model definitions
# (isl-org/MiDaS v3 midas/dpt_depth.py + blocks.py + vit.py; shariqfarooq123/AdaBins
# models/unet_adaptive_bins.py + miniViT.py + layers.py; gen-efficientnet's tf_efficientnet_b5).
# The files themselves cannot be downloaded here.
# ---------------------------------------------------------------------------------------------


def _expected_dpt_large() -> dict[str, tuple[int, ...]]:
    w, depth_, patch, img, classes = 1024, 24, 16, 384, 1000  # timm vit_large_patch16_384
    reassemble, f, head2 = (256, 512, 1024, 1024), 256, 32  # _make_encoder("vitl16_384"), features=256
    k: dict[str, tuple[int, ...]] = {}
    m = "pretrained.model."
    k[m + "cls_token"] = (1, 1, w)
    k[m + "pos_embed"] = (1, (img // patch) ** 2 + 1, w)
    k[m + "patch_embed.proj.weight"] = (w, 3, patch, patch)
    k[m + "patch_embed.proj.bias"] = (w,)
    for i in range(depth_):
        b = f"{m}blocks.{i}."
        for n in ("norm1", "norm2"):
            k[b + n + ".weight"] = k[b + n + ".bias"] = (w,)
        k[b + "attn.qkv.weight"], k[b + "attn.qkv.bias"] = (3 * w, w), (3 * w,)
        k[b + "attn.proj.weight"], k[b + "attn.proj.bias"] = (w, w), (w,)
        k[b + "mlp.fc1.weight"], k[b + "mlp.fc1.bias"] = (4 * w, w), (4 * w,)
        k[b + "mlp.fc2.weight"], k[b + "mlp.fc2.bias"] = (w, 4 * w), (w,)
    k[m + "norm.weight"] = k[m + "norm.bias"] = (w,)
    k[m + "head.weight"], k[m + "head.bias"] = (classes, w), (classes,)
    for j, r in enumerate(reassemble, 1):
        a = f"pretrained.act_postprocess{j}."
        k[a + "0.project.0.weight"], k[a + "0.project.0.bias"] = (w, 2 * w), (w,)  # ProjectReadout
        k[a + "3.weight"], k[a + "3.bias"] = (r, w, 1, 1), (r,)
        k[f"scratch.layer{j}_rn.weight"] = (f, r, 3, 3)
        rn = f"scratch.refinenet{j}."
        for u in ("resConfUnit1", "resConfUnit2"):
            for c in ("conv1", "conv2"):
                k[f"{rn}{u}.{c}.weight"], k[f"{rn}{u}.{c}.bias"] = (f, f, 3, 3), (f,)
        k[rn + "out_conv.weight"], k[rn + "out_conv.bias"] = (f, f, 1, 1), (f,)
    k["pretrained.act_postprocess1.4.weight"], k["pretrained.act_postprocess1.4.bias"] = (256, 256, 4, 4), (256,)
    k["pretrained.act_postprocess2.4.weight"], k["pretrained.act_postprocess2.4.bias"] = (512, 512, 2, 2), (512,)
    k["pretrained.act_postprocess4.4.weight"], k["pretrained.act_postprocess4.4.bias"] = (1024, 1024, 3, 3), (1024,)
    k["scratch.output_conv.0.weight"], k["scratch.output_conv.0.bias"] = (f // 2, f, 3, 3), (f // 2,)
    k["scratch.output_conv.2.weight"], k["scratch.output_conv.2.bias"] = (head2, f // 2, 3, 3), (head2,)
    k["scratch.output_conv.4.weight"], k["scratch.output_conv.4.bias"] = (1, head2, 1, 1), (1,)
    return k


def _bn(k: dict, name: str, c: int) -> None:
    for leaf in ("weight", "bias", "running_mean", "running_var"):
        k[f"{name}.{leaf}"] = (c,)
    k[f"{name}.num_batches_tracked"] = ()


# tf_efficientnet_b5 (gen-efficientnet / timm arch def scaled by width x1.6, depth x2.2):
# (block, repeats, kernel, stride, expansion, out channels)
_B5_STAGES = [("ds", 3, 3, 1, 1, 24), ("ir", 5, 3, 2, 6, 40), ("ir", 5, 5, 2, 6, 64), ("ir", 7, 3, 2, 6, 128),
              ("ir", 7, 5, 1, 6, 176), ("ir", 9, 5, 2, 6, 304), ("ir", 3, 3, 1, 6, 512)]


def _expected_adabins_nyu() -> dict[str, tuple[int, ...]]:
    k: dict[str, tuple[int, ...]] = {}
    e = "encoder.original_model."
    k[e + "conv_stem.weight"] = (48, 3, 3, 3)
    _bn(k, e + "bn1", 48)
    cin = 48
    for s, (kind, reps, ks, _stride, exp, cout) in enumerate(_B5_STAGES):
        for i in range(reps):
            b = f"{e}blocks.{s}.{i}."
            rd = int(cin * 0.25)  # squeeze-excite reduction from the block's input channels
            if kind == "ds":
                k[b + "conv_dw.weight"] = (cin, 1, ks, ks)
                _bn(k, b + "bn1", cin)
                se_ch = cin
                k[b + "conv_pw.weight"] = (cout, cin, 1, 1)
                _bn(k, b + "bn2", cout)
            else:
                mid = cin * exp
                k[b + "conv_pw.weight"] = (mid, cin, 1, 1)
                _bn(k, b + "bn1", mid)
                k[b + "conv_dw.weight"] = (mid, 1, ks, ks)
                _bn(k, b + "bn2", mid)
                se_ch = mid
                k[b + "conv_pwl.weight"] = (cout, mid, 1, 1)
                _bn(k, b + "bn3", cout)
            k[b + "se.conv_reduce.weight"], k[b + "se.conv_reduce.bias"] = (rd, se_ch, 1, 1), (rd,)
            k[b + "se.conv_expand.weight"], k[b + "se.conv_expand.bias"] = (se_ch, rd, 1, 1), (se_ch,)
            cin = cout
    k[e + "conv_head.weight"] = (2048, 512, 1, 1)
    _bn(k, e + "bn2", 2048)
    # DecoderBN(num_classes=128): conv2, up1..up4 (skip inputs 2048+176, 1024+64, 512+40, 256+24), conv3
    k["decoder.conv2.weight"], k["decoder.conv2.bias"] = (2048, 2048, 1, 1), (2048,)
    for name, cin_, cout_ in (("up1", 2048 + 176, 1024), ("up2", 1024 + 64, 512), ("up3", 512 + 40, 256),
                              ("up4", 256 + 24, 128)):
        d = f"decoder.{name}._net."
        k[d + "0.weight"], k[d + "0.bias"] = (cout_, cin_, 3, 3), (cout_,)
        _bn(k, d + "1", cout_)
        k[d + "3.weight"], k[d + "3.bias"] = (cout_, cout_, 3, 3), (cout_,)
        _bn(k, d + "4", cout_)
    k["decoder.conv3.weight"], k["decoder.conv3.bias"] = (128, 128, 3, 3), (128,)
    # mViT(128, n_query_channels=128, patch_size=16, dim_out=256, embedding_dim=128, num_heads=4)
    a = "adaptive_bins_layer."
    p = a + "patch_transformer."
    for i in range(4):  # nn.TransformerEncoderLayer(128, 4, dim_feedforward=1024) x 4
        t = f"{p}transformer_encoder.layers.{i}."
        k[t + "self_attn.in_proj_weight"], k[t + "self_attn.in_proj_bias"] = (384, 128), (384,)
        k[t + "self_attn.out_proj.weight"], k[t + "self_attn.out_proj.bias"] = (128, 128), (128,)
        k[t + "linear1.weight"], k[t + "linear1.bias"] = (1024, 128), (1024,)
        k[t + "linear2.weight"], k[t + "linear2.bias"] = (128, 1024), (128,)
        for n in ("norm1", "norm2"):
            k[t + n + ".weight"] = k[t + n + ".bias"] = (128,)
    k[p + "embedding_convPxP.weight"], k[p + "embedding_convPxP.bias"] = (128, 128, 16, 16), (128,)
    k[p + "positional_encodings"] = (500, 128)
    k[a + "conv3x3.weight"], k[a + "conv3x3.bias"] = (128, 128, 3, 3), (128,)
    k[a + "regressor.0.weight"], k[a + "regressor.0.bias"] = (256, 128), (256,)
    k[a + "regressor.2.weight"], k[a + "regressor.2.bias"] = (256, 256), (256,)
    k[a + "regressor.4.weight"], k[a + "regressor.4.bias"] = (256, 256), (256,)
    k["conv_out.0.weight"], k["conv_out.0.bias"] = (256, 128, 1, 1), (256,)
    return k


def _meta(name):
    with torch.device("meta"):
        return architectures.build_depth_module(get_entry(name).config)


def test_dpt_large_key_layout_matches_midas():
    got = {k: tuple(v.shape) for k, v in _meta("dpt_large").state_dict().items()}
    exp = _expected_dpt_large()
    assert sorted(set(got) ^ set(exp)) == []
    assert got == exp
    # DPT-Large is published as ~343M parameters; 1.376 GB in fp32, like the 1.37 GB file.
    assert 343e6 < sum(np.prod(s, dtype=np.int64) for s in exp.values()) < 345e6


def test_adabins_nyu_key_layout_matches_adabins():
    model = _meta("adabins_nyu")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    exp = _expected_adabins_nyu()
    assert sorted(set(got) ^ set(exp)) == []
    assert got == exp
    # Our encoder builder is timm's public tf_efficientnet_b5 (classifier removed).
    import timm

    with torch.device("meta"):
        ref = timm.create_model("tf_efficientnet_b5", pretrained=False, num_classes=0)
    assert {f"encoder.original_model.{k}": tuple(v.shape) for k, v in ref.state_dict().items()} == {
        k: v for k, v in got.items() if k.startswith("encoder.")}


def test_adabins_checkpoint_size_is_consistent_with_the_layout():
    # AdaBins_nyu.pt = fp32 model + AdamW's two moments per parameter (+ pickle overhead): the
    # registry's size must be ~ 4 * (params + buffers) + 8 * params.
    model = _meta("adabins_nyu")
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    estimate = 4 * (params + buffers) + 8 * params
    assert abs(get_entry("adabins_nyu").size - estimate) / estimate < 0.01


def test_registry_depth_entries():
    e = get_entry("dpt_large")
    assert e.role == "depth" and e.filename == "dpt_large-midas-2f21e586.pt"
    assert e.sha256 == "2f21e586477d90cb9624c7eef5df7891edca49a1c4795ee2cb631fd4daa6ca69"
    assert e.urls[0] == "https://github.com/intel-isl/DPT/releases/download/1_0/dpt_large-midas-2f21e586.pt"
    assert e.config["net_size"] == 384 and tuple(e.config["mean"]) == (0.5, 0.5, 0.5)
    a = get_entry("adabins_nyu")
    assert a.role == "depth" and a.filename == "AdaBins_nyu.pt" and a.size == 940_558_786
    assert a.sha256 == "3c917d1b86d058918d4055e70b2cdb9696ec4967bb2d8f05c0051263c1ac9641"
    assert (a.config["n_bins"], a.config["min_depth"], a.config["max_depth"]) == (256, 0.001, 10.0)
    for name in ("tiny-midas", "tiny-adabins"):
        t = get_entry(name)
        assert t.tiny and t.role == "depth" and (t.sha256, t.size) == TINY_PINS[name]


# ---------------------------------------------------------------------------------------------
# Our forward passes against the libraries' own
# ---------------------------------------------------------------------------------------------


def test_dpt_backbone_taps_equal_timm_intermediates(tiny_models):
    model = tiny_models.midas.model
    vit = model.pretrained.model
    x = torch.from_numpy(_image(64, 64, 1).transpose(2, 0, 1).astype(np.float32) / 127.5 - 1)[None]
    _, ours = model._tokens_at_hooks(x)  # (no ResNet stage maps: dpt_large is a plain ViT)
    theirs = vit.forward_intermediates(x, indices=list(model.hooks), output_fmt="NLC", intermediates_only=True,
                                       return_prefix_tokens=True)
    for a, (patches, prefix) in zip(ours, theirs):
        torch.testing.assert_close(a[:, 1:], patches)
        torch.testing.assert_close(a[:, :1], prefix)


def test_adabins_encoder_head_equals_timm_features(tiny_models):
    enc = tiny_models.adabins.model.encoder
    x = torch.from_numpy(_image(64, 96, 2).transpose(2, 0, 1).astype(np.float32) / 255)[None]
    b0, b1, b2, b4, head = enc(x)
    torch.testing.assert_close(enc.original_model.bn2(head), enc.original_model.forward_features(x))
    assert [t.shape[-1] for t in (b0, b1, b2, b4, head)] == [48, 24, 12, 6, 3]  # strides 2, 4, 8, 16, 32


# ---------------------------------------------------------------------------------------------
# Tiny models: generation, verification, loading
# ---------------------------------------------------------------------------------------------

_CHILD = """
import hashlib, json
from disco_spec.models.tiny import tiny_bytes
print(json.dumps({n: [hashlib.sha256(b).hexdigest(), len(b)] for n in ("tiny-midas", "tiny-adabins")
                  for b in [tiny_bytes(n)]}))
"""


@pytest.mark.slow
def test_tiny_depth_bytes_reproducible_in_two_processes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DISCO_SPEC_CACHE": str(tmp_path / "c"), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-W", "ignore", "-c", _CHILD], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    for name in ("tiny-midas", "tiny-adabins"):
        assert results[0][name] == results[1][name] == list(TINY_PINS[name]), name


def test_tiny_depth_generation_leaves_global_rng_alone():
    before = torch.random.get_rng_state()
    tiny.tiny_bytes("tiny-adabins")
    assert torch.equal(before, torch.random.get_rng_state())


def test_tiny_models_load_through_resolve_weights(cache):
    w = resolve_weights("tiny-midas", "depth")
    assert w.sha256 == TINY_PINS["tiny-midas"][0] and w.size == TINY_PINS["tiny-midas"][1]
    midas = load_midas(w, "cpu")
    assert not midas.model.training and not any(p.requires_grad for p in midas.model.parameters())
    a = load_adabins(resolve_weights("tiny-adabins", "depth"), "cpu")
    assert all(p.dtype == torch.float32 for p in a.model.parameters())
    with pytest.raises(errors.ModelError, match="not an AdaBins model"):
        load_adabins(w, "cpu")


def test_tampered_depth_checkpoint_is_refused_and_never_read(cache, monkeypatch):
    w = resolve_weights("tiny-adabins", "depth")
    data = bytearray(Path(w.path).read_bytes())
    data[len(data) // 2] ^= 0x01
    Path(w.path).write_bytes(bytes(data))
    reads = []
    monkeypatch.setattr(depth, "read_depth_state_dict", lambda *a, **k: reads.append(a) or {})
    try:
        with pytest.raises(errors.WeightsHashMismatch) as ei:
            load_depth_models({**TINY, "midas_weight": 0.5}, "cpu")
        assert ei.value.expected == TINY_PINS["tiny-adabins"][0]
        assert ei.value.actual == hashlib.sha256(bytes(data)).hexdigest()
        assert reads == []  # neither model was read: both files are verified before either is loaded
    finally:
        Path(w.path).unlink()


def test_loaded_weights_do_not_follow_later_changes_to_the_file(tmp_path):
    # safetensors (and mmap'ed torch) loads are backed by the file's pages; the loader must copy.
    src = Path(resolve_weights("tiny-midas", "depth").path)
    path = tmp_path / "midas.safetensors"
    path.write_bytes(src.read_bytes())
    ref = SimpleNamespace(path=str(path), sha256=TINY_PINS["tiny-midas"][0])
    midas = load_midas(resolve_weights(ref, "depth", spec_dir=str(tmp_path)), "cpu", config=get_entry("tiny-midas").config)
    before = {k: v.clone() for k, v in midas.model.state_dict().items()}
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data), 4096):
        data[i] ^= 0x40
    path.write_bytes(bytes(data))
    after = midas.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_adabins_training_checkpoint_layout_loads_weights_only(tmp_path, tiny_models):
    """AdaBins ships {'model': {'module.'+key: tensor}, 'optimizer': ..., 'epoch': n}; old key names too."""
    sd = tiny_models.adabins.model.state_dict()
    renamed = {}
    for k, v in sd.items():
        k = k.replace("adaptive_bins_layer.conv3x3.", "adaptive_bins_layer.embedding_conv.")
        renamed["module." + k] = v.clone()
    ckpt = {"model": renamed, "epoch": 24,
            "optimizer": {"state": {0: {"step": 10, "exp_avg": torch.zeros(3)}},
                          "param_groups": [{"lr": 3.5e-4, "betas": (0.9, 0.999), "params": [0]}]}}
    path = tmp_path / "AdaBins_tiny.pt"
    torch.save(ckpt, path)
    ref = SimpleNamespace(path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    w = resolve_weights(ref, "depth", spec_dir=str(tmp_path))
    loaded = load_adabins(w, "cpu", config=get_entry("tiny-adabins").config)
    img = _image(24, 32, 3)
    assert torch.equal(loaded.predict(img, "cpu"), tiny_models.adabins.predict(img, "cpu"))


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path, tiny_models):
    path = tmp_path / "bad.pt"
    torch.save({"model": tiny_models.adabins.model.state_dict(), "args": argparse.Namespace(lr=1)}, path)
    ref = SimpleNamespace(path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(errors.ModelError, match="never unpickles"):
        load_adabins(resolve_weights(ref, "depth", spec_dir=str(tmp_path)), "cpu", config=get_entry("tiny-adabins").config)


# ---------------------------------------------------------------------------------------------
# Sizing rules (computed by hand)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("w,h,expected", [
    (512, 512, (384, 384)),    # both scales 0.75
    (1280, 768, (640, 384)),   # 0.5 (height) is closer to 1 than 0.3 -> 640 x 384
    (640, 360, (672, 384)),    # 1.0667 (height) beats 0.6: width 682.67 -> 21 * 32
    (100, 50, (384, 192)),     # 3.84 (width) beats 7.68
    (480, 100, (384, 64)),     # 0.8 (width) beats 3.84: height 80 = 2.5 * 32 rounds half to even -> 64
    (300, 200, (384, 256)),    # 1.28 (width) beats 1.92
    (384, 384, (384, 384)),
])
def test_midas_minimal_resize(w, h, expected):
    assert minimal_resize_size(w, h, 384, 384, 32) == expected


def test_midas_resize_refuses_degenerate_shapes():
    with pytest.raises(errors.ModelError, match="too elongated"):
        minimal_resize_size(1000, 20)  # height 7.68 rounds to 0; MiDaS would crash in OpenCV


def test_midas_input_tensor(tiny_models):
    img = _image(40, 56)
    x = depth_midas.midas_input(img, get_entry("tiny-midas").config)
    assert x.shape == (1, 3, 32, 64) and x.dtype == torch.float32  # net 64: 1.1429 (width) beats 1.6
    assert -1.5 < float(x.min()) and float(x.max()) < 1.5  # (x - 0.5) / 0.5, bicubic overshoot aside
    with pytest.raises(errors.ModelError, match="multiples of 32"):
        tiny_models.midas.model(torch.zeros(1, 3, 48, 64))


@pytest.mark.parametrize("w,h,expected", [
    (1000, 500, (1000, 500, None)),         # exactly 500,000: not resized
    (1001, 500, (1000, 499, "lanczos")),    # scale sqrt(500000/500500) = 0.9995: 1000.4999, 499.750
    (1280, 768, (912, 547, "lanczos")),     # DD's default size: scale 0.71318
    (448, 448, (448, 448, None)),           # exactly 448*448: not resized
    (448, 447, (448, 447, "bicubic")),      # scale 1.00112: 448.5008 -> 448, 447.4997 -> 447
    (100, 50, (633, 316, "bicubic")),       # scale 448 / sqrt(5000) = 6.3357
])
def test_adabins_area_rule(w, h, expected):
    assert adabins_input_size(w, h) == expected


# ---------------------------------------------------------------------------------------------
# estimate_depth
# ---------------------------------------------------------------------------------------------


def test_estimate_depth_shape_dtype_finite(tiny_models):
    img = _image(40, 56)
    d = estimate_depth(tiny_models, img, 0.3, "cpu")
    assert d.shape == (40, 56) and d.dtype == torch.float32 and torch.isfinite(d).all()
    a = tiny_models.adabins.predict(img, "cpu")
    assert a.shape == (40, 56) and float(a.std()) > 0


def test_mix_equals_weighted_sum_of_the_two_models(tiny_models):
    img = _image(40, 56, seed=5)
    w = 0.3
    p = tiny_models.midas.predict(img, "cpu")
    a = tiny_models.adabins.predict(img, "cpu")
    # DD: prediction_np = (50 - p) / 19; depth = prediction_np * w + adabins * (1 - w), all float32
    expected = ((50.0 - p.numpy()) / 19.0) * w + a.numpy() * (1.0 - w)
    got = estimate_depth(tiny_models, img, w, "cpu").numpy()
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_weight_one_is_midas_only_and_skips_adabins(cache, tiny_models, monkeypatch):
    calls = []
    real = depth.load_adabins
    monkeypatch.setattr(depth, "load_adabins", lambda *a, **k: calls.append(a) or real(*a, **k))
    models = load_depth_models({**TINY, "midas_weight": 1.0}, "cpu")
    assert models.adabins is None and models.adabins_weights is None and calls == []
    assert models.midas_weights.sha256 == TINY_PINS["tiny-midas"][0]
    img = _image(40, 56, seed=7)
    p = tiny_models.midas.predict(img, "cpu")
    np.testing.assert_array_equal(estimate_depth(models, img, 1.0, "cpu").numpy(), ((50.0 - p.numpy()) / 19.0))
    with pytest.raises(errors.ModelError, match="not loaded"):
        estimate_depth(models, img, 0.5, "cpu")


def test_estimate_depth_is_deterministic(tiny_models):
    img = _image(33, 70, seed=9)
    a = estimate_depth(tiny_models, img, 0.6, "cpu")
    b = estimate_depth(tiny_models, img.copy(), 0.6, "cpu")
    assert torch.equal(a, b)


def test_estimate_depth_rejects_bad_inputs(tiny_models):
    with pytest.raises(errors.ModelError, match="uint8"):
        estimate_depth(tiny_models, np.zeros((8, 8, 3), np.float32), 0.3, "cpu")
    with pytest.raises(errors.ModelError, match="> 0"):
        estimate_depth(tiny_models, _image(), 0.0, "cpu")


def test_adabins_output_is_within_the_bins_range(tiny_models):
    out = tiny_models.adabins.infer(_image(192, 256, 4), "cpu")
    assert out.shape == (192, 256) and float(out.min()) >= 0.001 and float(out.max()) <= 10.0
    # flip averaging: a mirrored image gives the mirrored prediction
    img = _image(192, 256, 4)
    mirrored = tiny_models.adabins.infer(np.ascontiguousarray(img[:, ::-1]), "cpu")
    torch.testing.assert_close(mirrored, out.flip(-1))


# ---------------------------------------------------------------------------------------------
# Other MiDaS choices, wrong kinds, and the transformers path
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dpt_hybrid", "dpt_hybrid_nyu", "midas_v21", "midas_v21_small"])
def test_other_midas_variants_are_accepted_and_resolved_from_the_registry(cache, name):
    # No longer refused: offline, without the file, the error says where to get it and what hash to expect.
    with pytest.raises(errors.ModelError, match=f"(?s)not in the cache.*starting with {get_entry(name).sha256_prefix}"):
        load_depth_models({"midas_depth_model": name, "midas_weight": 1.0}, "cpu", fetch=False)


def test_wrong_model_kinds_are_refused():
    with pytest.raises(errors.ModelError, match="not a MiDaS model"):
        load_depth_models({"midas_depth_model": "tiny-adabins", "midas_weight": 1.0}, "cpu")
    with pytest.raises(errors.ModelError, match="not an AdaBins model"):
        load_depth_models({"midas_depth_model": "tiny-midas", "adabins_model": "tiny-midas", "midas_weight": 0.5},
                          "cpu")
    with pytest.raises(errors.ModelError, match="is a clip model"):
        resolve_weights("tiny-clip", "depth")


def test_hf_reference_without_transformers_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    with pytest.raises(errors.ModelError, match="pip install transformers"):
        load_depth_models({"midas_depth_model": "hf:Intel/dpt-large@main", "midas_weight": 1.0}, "cpu")
    assert depth.parse_hf_ref("hf:Intel/dpt-large@e93fb41") == ("Intel/dpt-large", "e93fb41")
    assert depth.parse_hf_ref("hf:Intel/dpt-large") == ("Intel/dpt-large", None)
    with pytest.raises(errors.ModelError, match="expected hf:"):
        depth.parse_hf_ref("hf:")


def test_camera_section_object_is_accepted(tiny_models):
    from disco_spec.spec.models import Camera3DSection

    sec = Camera3DSection(midas_depth_model="tiny-midas", adabins_model="tiny-adabins", midas_weight=0.3)
    models = load_depth_models(sec, "cpu")
    assert models.midas_source == "tiny-midas" and models.adabins is not None
    assert models.adabins_weights.sha256 == TINY_PINS["tiny-adabins"][0]
    img = _image(40, 56)
    assert torch.equal(estimate_depth(models, img, 0.3, "cpu"), estimate_depth(tiny_models, img, 0.3, "cpu"))


"""disco_spec.engine.cutouts: DD's guidance and image-prompt cutouts, generator-driven.

Reference implementations below are written from DD's classes (disco.py:830 (MakeCutouts),
disco.py:874 (MakeCutoutsDango)) in DD's style —
global torch RNG and torchvision's random transforms — so that, seeded alike, they must agree with
the generator-driven engine draw for draw.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from resize_right import resize as rr_resize

from disco_spec.engine import cutouts, rng

pytestmark = pytest.mark.render


def _image(h, w, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _is_grey(t):
    return torch.allclose(t[0], t[1]) and torch.allclose(t[1], t[2])


def _padded_square(x):
    """Zero-padded (almost) square built by pasting, independent of F.pad's argument order."""
    _, c, h, w = x.shape
    short = min(h, w)
    top, left = (w - short) // 2, (h - short) // 2
    out = torch.zeros(1, c, h + 2 * top, w + 2 * left)
    out[:, :, top:top + h, left:left + w] = x
    return out


# --------------------------------------------------------------------------- dango cutouts


@pytest.mark.parametrize("overview, inner", [(0, 1), (1, 0), (2, 3), (3, 0), (4, 2), (5, 1), (12, 4), (4, 12)])
@pytest.mark.parametrize("hw", [(20, 28), (30, 18)])
def test_dango_counts_and_sizes(overview, inner, hw):
    x = _image(*hw)
    out = cutouts.dango_cutouts(x, 16, overview, inner, 1.0, 0.2, rng.make_generator(0))
    assert out.shape == (overview + inner, 3, 16, 16)
    assert torch.isfinite(out).all()


def test_dango_rejects_no_cuts():
    with pytest.raises(ValueError):
        cutouts.dango_cutouts(_image(8, 8), 8, 0, 0, 1.0, 0.0, rng.make_generator(0))


@pytest.mark.parametrize("hw", [(20, 28), (29, 18), (24, 24)])
def test_overview_cuts(hw):
    x = _image(*hw, seed=1)
    out = cutouts.dango_cutouts(x, 16, 4, 0, 1.0, 0.0, rng.make_generator(0), skip_augs=True)
    base = rr_resize(_padded_square(x), out_shape=[1, 3, 16, 16])[0]
    assert torch.allclose(out[0], base, atol=1e-6)
    assert torch.allclose(out[2], torch.flip(out[0], dims=[-1]), atol=0)
    lum = 0.2989 * base[0] + 0.587 * base[1] + 0.114 * base[2]
    assert _is_grey(out[1]) and torch.allclose(out[1][0], lum, atol=1e-6)
    assert _is_grey(out[3]) and torch.allclose(out[3][0], torch.flip(lum, dims=[-1]), atol=1e-6)
    assert not _is_grey(out[0])
    # black bars: the padded rows/cols of a landscape image are zero in the base before resizing
    many = cutouts.dango_cutouts(x, 16, 6, 0, 1.0, 0.0, rng.make_generator(0), skip_augs=True)
    assert all(torch.equal(many[i], many[0]) for i in range(6))
    assert torch.allclose(many[0], base, atol=1e-6)


@pytest.mark.parametrize("inner, gray_p", [(8, 0.0), (8, 0.2), (12, 0.2), (8, 0.5), (4, 1.0), (1, 0.0)])
def test_inner_grey_rule_uses_less_or_equal(inner, gray_p):
    x = _image(32, 40, seed=2)
    out = cutouts.dango_cutouts(x, 16, 0, inner, 1.0, gray_p, rng.make_generator(3), skip_augs=True)
    grey_flags = [_is_grey(out[i]) for i in range(inner)]
    n_grey = min(inner, math.floor(gray_p * inner) + 1)
    assert grey_flags == [True] * n_grey + [False] * (inner - n_grey)


def _reference_dango(x, cut, overview, inner, ic_pow, gray_p, skip_augs):
    """DD's MakeCutoutsDango (disco.py:874 (MakeCutoutsDango)), on the global RNG."""
    h, w = x.shape[2:]
    short, min_size = min(h, w), min(h, w, cut)
    shape = [1, 3, cut, cut]
    base = rr_resize(_padded_square(x), out_shape=shape)
    grey = T.Grayscale(3)
    cuts = [base, grey(base), TF.hflip(base), grey(TF.hflip(base))][:overview] if overview <= 4 else [base] * overview
    for i in range(inner):
        size = int(torch.rand([]) ** ic_pow * (short - min_size) + min_size)
        ox = torch.randint(0, w - size + 1, ())
        oy = torch.randint(0, h - size + 1, ())
        c = x[:, :, oy:oy + size, ox:ox + size]
        if i <= int(gray_p * inner):
            c = grey(c)
        cuts.append(rr_resize(c, out_shape=shape))
    stack = torch.cat(cuts)
    if not skip_augs:
        noise = T.Lambda(lambda im: im + torch.randn_like(im) * 0.01)
        stack = T.Compose([
            T.RandomHorizontalFlip(p=0.5), noise,
            T.RandomAffine(degrees=10, translate=(0.05, 0.05), interpolation=T.InterpolationMode.BILINEAR), noise,
            T.RandomGrayscale(p=0.1), noise,
            T.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1),
        ])(stack)
    return stack


@pytest.mark.parametrize("skip_augs", [True, False])
@pytest.mark.parametrize("ic_pow", [1.0, 2.0])
def test_dango_matches_reference_draw_for_draw(skip_augs, ic_pow):
    x = _image(40, 56, seed=4)
    for seed in range(3):
        torch.manual_seed(seed)
        ref = _reference_dango(x, 24, 3, 5, ic_pow, 0.2, skip_augs)
        ours = cutouts.dango_cutouts(x, 24, 3, 5, ic_pow, 0.2, rng.make_generator(seed), skip_augs=skip_augs)
        assert torch.allclose(ours, ref, atol=1e-6), seed


def test_inner_cuts_are_crops_at_uniform_integer_offsets():
    # cut_size == short side: every inner cut has size 20 and the resize is the identity, so each
    # cut must be x[:, :, 0:20, ox:ox+20] for an integer ox in 0..8, each offset reachable
    x = _image(20, 28, seed=3)
    seen = set()
    for seed in range(12):
        out = cutouts.dango_cutouts(x, 20, 0, 6, 1.0, 0.0, rng.make_generator(seed), skip_augs=True)
        for i in range(1, 6):  # cut 0 is grey (Q25)
            matches = [ox for ox in range(9) if torch.allclose(out[i], x[0, :, :, ox:ox + 20], atol=1e-6)]
            assert len(matches) == 1
            seen.add(matches[0])
    assert seen == set(range(9))


def test_dango_deterministic_and_global_rng_free():
    x = _image(24, 30, seed=5)
    torch.manual_seed(1)
    state = torch.get_rng_state()
    a = cutouts.dango_cutouts(x, 16, 2, 4, 1.0, 0.2, rng.make_generator(9), aug_mode="2D")
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(2)
    b = cutouts.dango_cutouts(x, 16, 2, 4, 1.0, 0.2, rng.make_generator(9), aug_mode="2D")
    c = cutouts.dango_cutouts(x, 16, 2, 4, 1.0, 0.2, rng.make_generator(10), aug_mode="2D")
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("aug_mode", ["None", "Video Input", "3D"])
def test_dango_gradients_flow(aug_mode):
    x = _image(24, 32, seed=6).requires_grad_()
    out = cutouts.dango_cutouts(x, 16, 4, 4, 1.0, 0.2, rng.make_generator(0), aug_mode=aug_mode)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# --------------------------------------------------------------------------- lanczos resample


def _np_lanczos_resample(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Independent numpy version of the low-pass stage (before bicubic) for a [h, w] plane."""

    def kernel(ratio):
        n = math.ceil(2 / ratio + 1)
        xs = np.array([j * ratio for j in range(-(n - 2), n - 1)])
        k = np.array([np.sinc(v) * np.sinc(v / 2) if abs(v) < 2 else 0.0 for v in xs])
        return k / k.sum()

    out = img.astype(np.float64)
    if out_h < img.shape[0]:
        k = kernel(out_h / img.shape[0])
        p = (len(k) - 1) // 2
        padded = np.pad(out, ((p, p), (0, 0)), mode="reflect")
        out = np.stack([sum(k[t] * padded[r + t] for t in range(len(k))) for r in range(out.shape[0])])
    if out_w < img.shape[1]:
        k = kernel(out_w / img.shape[1])
        p = (len(k) - 1) // 2
        padded = np.pad(out, ((0, 0), (p, p)), mode="reflect")
        out = np.stack([sum(k[t] * padded[:, c + t] for t in range(len(k))) for c in range(out.shape[1])], axis=1)
    return out


@pytest.mark.parametrize("src, dst", [((40, 30), (16, 16)), ((20, 12), (16, 16)), ((9, 9), (16, 16))])
def test_lanczos_resample_matches_numpy(src, dst):
    x = torch.rand(2, 3, *src, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    ours = cutouts.lanczos_resample(x, dst)
    assert ours.shape == (2, 3, *dst)
    low = np.stack([[_np_lanczos_resample(x[n, c].numpy(), *dst) for c in range(3)] for n in range(2)])
    ref = F.interpolate(torch.from_numpy(low).float(), size=dst, mode="bicubic", align_corners=True)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_lanczos_kernel_properties_and_constant_image():
    k = cutouts.lanczos_kernel(0.25)
    assert k.numel() == 2 * (math.ceil(2 / 0.25 + 1) - 2) + 1
    assert torch.allclose(k, k.flip(0)) and k.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert int(k.argmax()) == k.numel() // 2
    const = torch.full((1, 3, 50, 37), 0.3)
    assert torch.allclose(cutouts.lanczos_resample(const, (16, 16)), torch.full((1, 3, 16, 16), 0.3), atol=1e-6)


# --------------------------------------------------------------------------- image prompts


def _reference_image_prompt(img, cut, cutn, skip_augs):
    """DD's MakeCutouts (disco.py:830 (MakeCutouts)), on the global RNG."""
    img = T.Pad(img.shape[2] // 4, fill=0)(img)
    side_y, side_x = img.shape[2:]
    short = min(side_x, side_y)
    noise = T.Lambda(lambda im: im + torch.randn_like(im) * 0.01)
    augs = T.Compose([
        T.RandomHorizontalFlip(p=0.5), noise,
        T.RandomAffine(degrees=15, translate=(0.1, 0.1)), noise,
        T.RandomPerspective(distortion_scale=0.4, p=0.7), noise,
        T.RandomGrayscale(p=0.15), noise,
    ])
    out = []
    for ch in range(cutn):
        if ch > cutn - cutn // 4:
            c = img.clone()
        else:
            size = int(short * torch.zeros(1).normal_(mean=0.8, std=0.3).clip(float(cut / short), 1.0))
            ox = torch.randint(0, abs(side_x - size + 1), ())
            oy = torch.randint(0, abs(side_y - size + 1), ())
            c = img[:, :, oy:oy + size, ox:ox + size]
        if not skip_augs:
            c = augs(c)
        out.append(cutouts.lanczos_resample(c, (cut, cut)))
    return torch.cat(out)


@pytest.mark.parametrize("skip_augs", [True, False])
def test_image_prompt_cutouts_match_reference(skip_augs):
    img = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(7)) * 2 - 1
    for seed in range(2):
        torch.manual_seed(seed)
        ref = _reference_image_prompt(img, 24, 16, skip_augs)
        ours = cutouts.image_prompt_cutouts(img, 24, rng.make_generator(seed), skip_augs=skip_augs)
        assert ours.shape == (16, 3, 24, 24)
        assert torch.allclose(ours, ref, atol=1e-6), seed


def test_image_prompt_whole_image_cuts_and_padding():
    img = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(8)) * 2 - 1
    out = cutouts.image_prompt_cutouts(img, 16, rng.make_generator(0), skip_augs=True)
    padded = torch.zeros(1, 3, 32 + 16, 40 + 16)
    padded[:, :, 8:40, 8:48] = img
    whole = cutouts.lanczos_resample(padded, (16, 16))[0]
    for c in (13, 14, 15):
        assert torch.allclose(out[c], whole, atol=1e-6)
    assert not torch.allclose(out[12], whole)


def test_image_prompt_gradients_and_determinism():
    img = (torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(9)) * 2 - 1).requires_grad_()
    a = cutouts.image_prompt_cutouts(img, 16, rng.make_generator(1))
    a.sum().backward()
    assert img.grad is not None and torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0
    b = cutouts.image_prompt_cutouts(img.detach(), 16, rng.make_generator(1))
    assert torch.equal(a.detach(), b)

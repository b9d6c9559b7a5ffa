"""disco_spec.engine.perlin: DD's Perlin init (disco.py:739 (create_perlin_noise)), generator-driven."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from disco_spec.engine import perlin, rng

pytestmark = pytest.mark.render


def _reference_octave(gx, gy, cell):
    """Whole-square classic Perlin noise of one octave, written out corner by corner."""
    lat_x, lat_y = gx.shape[0] - 1, gx.shape[1] - 1
    t = torch.arange(cell, dtype=torch.float32) / cell
    fx = t.repeat(lat_x)[:, None]  # [lat_x*cell, 1]
    fy = t.repeat(lat_y)[None, :]
    ci = torch.arange(lat_x).repeat_interleave(cell)
    cj = torch.arange(lat_y).repeat_interleave(cell)

    def corner(di, dj):
        return gx[ci + di][:, cj + dj] * (fx - di) + gy[ci + di][:, cj + dj] * (fy - dj)

    def fade(t):
        return 3 * t**2 - 2 * t**3

    wx, wy = fade(fx), fade(fy)
    return ((1 - wx) * (1 - wy) * corner(0, 0) + wx * (1 - wy) * corner(1, 0)
            + (1 - wx) * wy * corner(0, 1) + wx * wy * corner(1, 1))


def _reference_planes(amps, base, channels, side_x, side_y, gen):
    n = len(amps)
    planes = []
    for _ in range(channels):
        acc = torch.full((base * 2**n, base * 2**n), 0.5)
        for o, amp in enumerate(amps):
            g = torch.randn((2, base * 2**o + 1, base * 2**o + 1), generator=gen)
            acc = acc + amp * _reference_octave(g[0], g[1], 2 ** (n - o))
        planes.append(acc)
    full = torch.stack(planes)[None]
    return F.interpolate(full, size=(side_y, side_x), mode="bilinear", align_corners=False, antialias=False)[0]


@pytest.mark.parametrize(
    "amps, base, channels, side_x, side_y",
    [((0.5, 0.3, 0.2), 1, 1, 20, 12), ((0.5, 0.33, 0.22, 0.15), 2, 3, 70, 50), (perlin.AMPS_B[:5], 4, 1, 96, 64)],
)
def test_noise_planes_equal_whole_square_then_resize(amps, base, channels, side_x, side_y):
    ours = perlin.noise_planes(amps, base, channels, side_x, side_y, rng.make_generator(3))
    ref = _reference_planes(amps, base, channels, side_x, side_y, torch.Generator().manual_seed(3))
    assert ours.shape == (channels, side_y, side_x)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_octave_amplitudes():
    assert perlin.AMPS_A == pytest.approx([0.5 * 1.5**-i for i in range(12)])
    assert perlin.AMPS_B == pytest.approx([0.5 * 1.5**-i for i in range(8)])


@pytest.mark.parametrize("mode", ["color", "gray", "mixed"])
def test_init_shape_range_and_channels(mode):
    x = perlin.perlin_init_image(48, 32, mode, rng.make_generator(2))
    assert x.shape == (1, 3, 32, 48) and x.dtype == torch.float32
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    channels_equal = torch.equal(x[0, 0], x[0, 1]) and torch.equal(x[0, 1], x[0, 2])
    assert channels_equal == (mode == "gray")


def test_init_deterministic_per_generator_and_global_rng_free():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = perlin.perlin_init_image(40, 24, "gray", rng.make_generator(0))
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(5)
    b = perlin.perlin_init_image(40, 24, "gray", rng.make_generator(0))
    assert torch.equal(a, b)
    c = perlin.perlin_init_image(40, 24, "gray", rng.make_generator(1))
    assert not torch.equal(a, c)


def test_modes_combine_as_the_table_says():
    w, h = 36, 28
    for mode, grey_a, grey_b in [("mixed", False, True)]:
        g = rng.make_generator(4)
        a = perlin.noise_image(perlin.AMPS_A, 1, grey_a, w, h, g)
        b = perlin.noise_image(perlin.AMPS_B, 4, grey_b, w, h, g)
        expected = ((a.float() / 255 + b.float() / 255) / 2 * 2 - 1)[None]
        assert torch.allclose(perlin.perlin_init_image(w, h, mode, rng.make_generator(4)), expected, atol=1e-6)
        assert (b[0] == b[1]).all() == grey_b


def _pil_autocontrast_lut(lo: int, hi: int) -> torch.Tensor:
    """PIL's ImageOps.autocontrast mapping (cutoff 0): int(v * 255/(hi-lo) - lo * 255/(hi-lo)), clipped."""
    scale = 255.0 / (hi - lo)
    offset = -lo * scale
    return torch.tensor([min(255, max(0, int(v * scale + offset))) for v in range(256)], dtype=torch.uint8)


@pytest.mark.parametrize("grey", [False, True])
def test_autocontrast_stretches_each_channel(grey):
    for seed in range(4):
        img = perlin.noise_image(perlin.AMPS_B, 4, grey, 50, 30, rng.make_generator(seed))
        assert img.dtype == torch.uint8 and img.shape == (3, 30, 50)
        # independent 8-bit path: octave sums -> clamp -> truncate to 8 bits -> per-channel stretch
        planes = perlin.noise_planes(perlin.AMPS_B, 4, 1 if grey else 3, 50, 30, rng.make_generator(seed))
        q = (planes.clamp(0, 1) * 255).to(torch.uint8).expand(3, -1, -1)
        for ch in range(3):
            lo, hi = int(q[ch].min()), int(q[ch].max())
            assert hi > lo
            assert torch.equal(img[ch], _pil_autocontrast_lut(lo, hi)[q[ch].long()])
            mapped = img[ch].float() / 255 * 2 - 1
            # the darkest value maps to exactly -1; the brightest to 1, except that PIL's float
            # truncation (e.g. int(25 * 10.2) == 254) can leave it one step short
            assert float(mapped.min()) == -1.0
            assert float(mapped.max()) >= 253 / 255 * 2 - 1 and int(img[ch].max()) in (254, 255)


@pytest.mark.slow
def test_statistics_are_sane():
    means = []
    for seed in range(3):
        x = perlin.perlin_init_image(32, 32, "color", rng.make_generator(seed))
        means.append(float(x.mean()))
        assert float(x.std()) > 0.05
    assert abs(sum(means) / len(means)) < 0.3


def test_bad_mode():
    with pytest.raises(ValueError):
        perlin.perlin_init_image(16, 16, "rainbow", rng.make_generator(0))

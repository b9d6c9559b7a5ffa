"""disco_spec.engine.losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from disco_spec.engine import losses

pytestmark = pytest.mark.render


def test_spherical_dist_known_angles():
    e1 = torch.tensor([1.0, 0.0, 0.0])
    e2 = torch.tensor([0.0, 1.0, 0.0])
    # orthogonal: |a-b| = sqrt(2), arcsin(sqrt(2)/2) = pi/4
    assert losses.spherical_dist(e1, e2).item() == pytest.approx(2 * (math.pi / 4) ** 2, rel=1e-6)
    assert losses.spherical_dist(e1, -e1).item() == pytest.approx(2 * (math.pi / 2) ** 2, rel=1e-6)
    assert losses.spherical_dist(e1, e1).item() == pytest.approx(0.0, abs=1e-7)
    # inputs are normalised first: scale does not matter
    assert losses.spherical_dist(5 * e1, 0.1 * e2).item() == pytest.approx(math.pi**2 / 8, rel=1e-6)
    # 60 degrees: |a-b| = 1, arcsin(1/2) = pi/6
    a = torch.tensor([1.0, 0.0])
    b = torch.tensor([0.5, math.sqrt(3) / 2])
    assert losses.spherical_dist(a, b).item() == pytest.approx(2 * (math.pi / 6) ** 2, rel=1e-5)


def test_spherical_dist_broadcasts():
    a = torch.eye(3)[:, None, :]  # [3,1,3]
    b = torch.eye(3)[None, :, :]  # [1,3,3]
    d = losses.spherical_dist(a, b)
    expected = torch.full((3, 3), math.pi**2 / 8)
    expected.fill_diagonal_(0)
    assert torch.allclose(d, expected, atol=1e-6)


def test_tv_loss_2x2():
    # [[a, b], [c, d]] -> replicate pad -> ((b-a)^2 + (d-c)^2 + (c-a)^2 + (d-b)^2) / 4
    img = torch.tensor([[0.0, 1.0], [2.0, 4.0]])
    x = img.expand(1, 3, 2, 2)
    assert losses.tv_loss(x).tolist() == pytest.approx([(1 + 4 + 4 + 9) / 4])
    # per image; a constant image has zero TV
    xs = torch.stack([x[0], torch.full((3, 2, 2), 7.0)])
    assert losses.tv_loss(xs).tolist() == pytest.approx([4.5, 0.0])


def test_tv_loss_mean_over_channels():
    x = torch.zeros(1, 2, 1, 2)
    x[0, 0, 0, 1] = 2.0  # channel 0: [0, 2] -> dx^2 = 4 at (0,0), 0 at (0,1); dy = 0
    assert losses.tv_loss(x).item() == pytest.approx(4 / 4)  # mean over C*H*W = 4 elements


def test_range_and_sat_loss():
    x = torch.tensor([2.0, -3.0, 0.5, 1.0]).view(1, 1, 2, 2)
    assert losses.range_loss(x).tolist() == pytest.approx([(1 + 4) / 4])
    assert losses.sat_loss(x).item() == pytest.approx((1 + 2) / 4)
    y = torch.stack([x[0], torch.zeros(1, 2, 2)])
    assert losses.range_loss(y).tolist() == pytest.approx([1.25, 0.0])
    assert losses.sat_loss(y).item() == pytest.approx(3 / 8)


def test_clip_loss_hand_computed():
    e = torch.eye(4)
    image = e[:2]  # two cuts: e1, e2
    targets = e[:2]
    w = torch.tensor([1.0, 0.5])
    # d = [[0, pi^2/8], [pi^2/8, 0]]; per cut sum d*w = [pi^2/16, pi^2/8]; mean = 3 pi^2 / 32
    assert losses.clip_loss(image, targets, w).item() == pytest.approx(3 * math.pi**2 / 32, rel=1e-6)
    neg = losses.clip_loss(image, targets, torch.tensor([1.0, -1.0]))
    assert neg.item() == pytest.approx((-math.pi**2 / 8 + math.pi**2 / 8) / 2, abs=1e-6)
    with pytest.raises(ValueError):
        losses.clip_loss(image, targets, torch.ones(3))


def test_clip_loss_gradient_flows():
    image = torch.randn(3, 8, requires_grad=True)
    loss = losses.clip_loss(image, torch.randn(2, 8), torch.tensor([0.7, 0.3]))
    loss.backward()
    assert image.grad is not None and torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0


def test_clamp_grad_rms_caps_and_keeps_direction():
    g = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    g = g / g.square().mean().sqrt() * 0.2  # rms 0.2
    out = losses.clamp_grad_rms(g, 0.05)
    assert out.square().mean().sqrt().item() == pytest.approx(0.05, rel=1e-5)
    assert torch.allclose(out, g * 0.25, rtol=1e-5, atol=1e-8)
    small = g / 20  # rms 0.01 < 0.05
    assert torch.allclose(losses.clamp_grad_rms(small, 0.05), small, rtol=1e-6, atol=0)
    zeros = torch.zeros(1, 3, 4, 4)
    assert torch.equal(losses.clamp_grad_rms(zeros, 0.05), zeros)


def test_normalize_target_weights():
    assert losses.normalize_target_weights([2.0, -1.0]).tolist() == pytest.approx([2.0, -1.0])
    assert losses.normalize_target_weights([-2.0, 1.0]).tolist() == pytest.approx([-2.0, 1.0])
    assert losses.normalize_target_weights([1.0, 1.0, 2.0]).tolist() == pytest.approx([0.25, 0.25, 0.5])
    assert losses.normalize_target_weights(torch.tensor([3.0])).tolist() == pytest.approx([1.0])
    for bad in ([1.0, -1.0], [1.0, -0.9995], []):
        with pytest.raises(ValueError, match="The weights must not sum to 0"):
            losses.normalize_target_weights(bad)
    # just above the threshold is fine
    assert losses.normalize_target_weights([1.0, -0.998]).sum().item() == pytest.approx(1.0)

"""disco_spec.engine.rng: documented seed derivation and explicit CPU generators."""

from __future__ import annotations

import hashlib

import pytest
import torch

from disco_spec.engine import rng

pytestmark = pytest.mark.render


def _expected(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") & (2**63 - 1)


@pytest.mark.parametrize(
    "args, text",
    [
        ((42,), "disco-spec/v1/42"),
        ((42, "frame", 3), "disco-spec/v1/42/frame/3"),
        ((0, "batch", 0, "cutouts"), "disco-spec/v1/0/batch/0/cutouts"),
        ((-7, "x"), "disco-spec/v1/-7/x"),
    ],
)
def test_derive_seed_matches_documented_formula(args, text):
    assert rng.derive_seed(*args) == _expected(text)


def test_derive_seed_range_and_sensitivity():
    seeds = {rng.derive_seed(1, "frame", i) for i in range(50)}
    assert len(seeds) == 50
    assert all(0 <= s < 2**63 for s in seeds)
    assert rng.derive_seed(1, "a") != rng.derive_seed(2, "a")


def test_derive_seed_rejects_bad_parts():
    with pytest.raises(TypeError):
        rng.derive_seed(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rng.derive_seed(1, True)  # type: ignore[arg-type]


def test_make_generator_is_cpu_and_reproducible():
    g1, g2 = rng.make_generator(123), rng.make_generator(123)
    assert g1.device.type == "cpu"
    assert torch.equal(rng.randn((4, 5), g1), rng.randn((4, 5), g2))
    assert not torch.equal(rng.rand(10, rng.make_generator(1)), rng.rand(10, rng.make_generator(2)))


def test_draws_are_float32_cpu_then_cast():
    a = rng.randn((3, 4), rng.make_generator(5), dtype=torch.float64)
    b = torch.randn((3, 4), generator=torch.Generator().manual_seed(5), dtype=torch.float32)
    assert a.dtype == torch.float64
    assert torch.equal(a, b.double())
    u = rng.rand((1000,), rng.make_generator(9))
    assert u.dtype == torch.float32 and 0 <= float(u.min()) and float(u.max()) < 1


def test_global_rng_untouched():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    g = rng.make_generator(3)
    rng.randn((10,), g)
    rng.rand((10,), g)
    rng.uniform_scalar(-1, 1, g)
    rng.randint_scalar(0, 10, g)
    rng.randperm(4, g)
    rng.bernoulli_scalar(0.5, g)
    rng.normal_scalar(0.8, 0.3, g)
    assert torch.equal(state, torch.get_rng_state())


def test_scalar_draws_mirror_global_expressions():
    torch.manual_seed(11)
    ref = [
        float(torch.empty(1).uniform_(-3, 3).item()),
        int(torch.randint(2, 9, (1,)).item()),
        [int(i) for i in torch.randperm(4)],
        bool(torch.rand(1) < 0.3),
        float(torch.zeros(1).normal_(mean=0.8, std=0.3)),
    ]
    g = rng.make_generator(11)
    ours = [
        rng.uniform_scalar(-3, 3, g),
        rng.randint_scalar(2, 9, g),
        rng.randperm(4, g),
        rng.bernoulli_scalar(0.3, g),
        float(rng.normal_scalar(0.8, 0.3, g)),
    ]
    assert ours == ref


def test_non_cpu_or_missing_generator_rejected():
    with pytest.raises(TypeError):
        rng.randn((2,), None)  # type: ignore[arg-type]

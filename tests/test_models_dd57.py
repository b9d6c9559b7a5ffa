"""The tiny stand-ins for DD 5.4-5.7's two new UNet architectures load through the real loader and run."""

from __future__ import annotations

import pytest
import torch

from disco_spec.models.diffusion import load_diffusion
from disco_spec.models.registry import get_entry
from disco_spec.models.resolve import resolve_weights

pytestmark = pytest.mark.render


@pytest.mark.parametrize("name, like", [("tiny-portrait", "portrait_generator_v001"),
                                        ("tiny-kaliyuga", "pixelartdiffusion_expanded")])
def test_tiny_later_architectures_load_and_run(cache, name, like):
    tiny, real = get_entry(name).config, get_entry(like).config
    for flag in ("num_heads", "num_head_channels", "resblock_updown", "use_scale_shift_norm"):
        assert tiny[flag] == real[flag]  # the same architecture, smaller
    w = resolve_weights(name, "diffusion")
    unet, diffusion = load_diffusion(w, tiny, steps=10, use_checkpoint=False, use_fp16=False, device="cpu")
    out = unet(torch.zeros(1, 3, 64, 64), torch.tensor([5]))
    assert out.shape == (1, 6, 64, 64) and torch.isfinite(out).all()

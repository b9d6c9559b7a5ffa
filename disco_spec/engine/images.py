"""Images as tensors: PIL RGB to [-1, 1] and back, as DD converts them (reading and writing files is run/'s)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def pil_to_pm1(img: Image.Image) -> torch.Tensor:
    """PIL RGB → [1,3,H,W] float32 in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].mul(2).sub(1).contiguous()


def to_pil(x_pm1: torch.Tensor) -> Image.Image:
    """[1,3,H,W] in [-1,1] → 8-bit RGB as DD converts it: (x+1)/2, clamp to [0,1], then ×255 truncated
    (torchvision's to_pil_image behaviour)."""
    x = x_pm1.detach().float().cpu()[0].add(1).div(2).clamp(0, 1)
    arr = x.mul(255).byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr, "RGB")


"""Which models run in reduced precision, DD 5.2's rule in one place.

DD converts the diffusion UNet's torso to fp16 (``use_fp16``, guided-diffusion's ``convert_to_fp16``)
and loads OpenAI CLIP models with ``clip.load``, which keeps their fp16 weights, only on CUDA; on a CPU
everything is fp32.  The loaders take the choice as an argument (``use_fp16`` / ``half``), so the
reduced-precision code paths run, and are tested, on a CPU too.
"""

from __future__ import annotations

import torch


def dd_half_precision(device: torch.device | str) -> bool:
    """True where DD runs the UNet torso and OpenAI CLIP in fp16: on CUDA devices."""
    return torch.device(device).type == "cuda"

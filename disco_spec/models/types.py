"""Plain interfaces between model loading and the engine (the engine never imports a loader)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch


@dataclass(frozen=True)
class ResolvedWeights:
    """A weight file on disk that has been checked against its expected SHA-256."""

    role: str  # "diffusion" | "secondary" | "clip" | "lpips" | "depth"
    name: str  # registry name, or "custom"
    path: str
    sha256: str
    size: int
    source_url: str | None = None


@dataclass
class ClipBundle:
    """One CLIP model ready for guidance. encode_* return float32 embeddings (not normalised)."""

    name: str
    input_resolution: int
    encode_image: Callable[[torch.Tensor], torch.Tensor]  # input: CLIP-normalised images [N,3,R,R]
    encode_text: Callable[[list[str]], torch.Tensor]  # raw strings -> [T, D]
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    weights: ResolvedWeights | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
        return (x01 - mean) / std

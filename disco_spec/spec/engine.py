"""The spec's [engine] section: disco-spec's own execution settings (not in DD). Pydantic only, no torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .fields import Section


class EngineSection(Section):
    """disco-spec's own execution settings (not in DD)."""

    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="'auto' picks CUDA when available.")
    deterministic: bool = Field(default=True, description="torch.use_deterministic_algorithms for byte-identical output.")
    batch_cut_batches: bool = Field(
        default=False,
        description="Send all of a CLIP model's cut batches through it in one forward and one backward (the same "
        "cuts, the same gradient up to float rounding). It trades memory for speed: memory grows with cutn_batches x "
        "cuts (DD's default still: +1.1 GiB, beyond what DD needs), and no GPU has measured the gain yet, so it is "
        "opt-in. false (default): one cut batch at a time, as DD.",
    )
    max_cuts_per_forward: int = Field(
        default=0, ge=0, le=4096,
        description="With batch_cut_batches, the most cuts in one CLIP forward (cut batches are grouped to fit); "
        "0 = no limit. Lower it when a render runs out of GPU memory.",
    )
    share_unet_forward: bool = Field(
        default=True,
        description="Secondary model off: one UNet forward with gradients serves both the sampler and the guidance "
        "when they see the same input at the same timestep (DD runs it twice; the values are the same).",
    )
    compile: bool = Field(
        default=False,
        description="torch.compile the diffusion UNet (deterministic settings). Off by default; recorded in the manifest.",
    )

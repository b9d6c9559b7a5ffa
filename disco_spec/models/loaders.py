"""One import for the guidance models' loaders; models/loaded.py builds a render's models through it.

`resolve_weights` turns a registry name or a `{path, sha256}` ref into a verified file (ResolvedWeights);
`load_diffusion` (with `diffusion_entry_config`), `load_secondary` and `load_lpips` take one, `load_clip`
also a registry name or a spec's CLIP ref (open_clip tags and local files included); `strict_tokenize` is
the CLIP tokenizer that refuses long prompts (Q28). Each reads the state dict on the CPU without unpickling
objects, builds the module and only then moves it to `device`. Depth models load in models/depth.py.
"""

from __future__ import annotations

from .. import errors  # re-exported: callers catch loaders.errors.ModelError
from .clip_loader import load_clip
from .clip_common import strict_tokenize
from .diffusion_loader import diffusion_entry_config, load_diffusion
from .resolve import resolve_weights
from .small_loaders import LpipsDistance, load_lpips, load_secondary

__all__ = [
    "LpipsDistance",
    "diffusion_entry_config",
    "errors",
    "load_clip",
    "load_diffusion",
    "load_lpips",
    "load_secondary",
    "resolve_weights",
    "strict_tokenize",
]

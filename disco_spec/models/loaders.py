"""The loading entry points the engine and CLI use, gathered in one place.

Each loader takes verified ResolvedWeights (see resolve_weights), reads the state dict on CPU
without unpickling arbitrary objects, builds the module and only then moves it to `device`.
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

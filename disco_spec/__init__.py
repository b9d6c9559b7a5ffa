"""disco-spec: declarative, reproducible renders of Disco Diffusion 5.2's CLIP-guided diffusion.

`render(spec_or_path, out=...)` is the Python API; importing the package does not import torch.
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["__version__", "render"]


def render(spec_or_path, out="images_out", **kwargs):
    """Render a spec (a JobSpec or a path to a .toml/.json file), with the options of
    disco_spec.run.request.RenderRequest.of; see disco_spec.run.renderer.render."""
    from .run.renderer import render as _render
    from .run.request import RenderRequest

    return _render(RenderRequest.of(spec_or_path, out, **kwargs))

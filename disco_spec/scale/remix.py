"""`disco-spec render IMAGE.png [--set KEY=VALUE ...]`: render again from what a PNG carries (a remix).

The PNG's spec (canonical, with the concrete seed) is the starting point, read as `rebuild` reads it
(repro.sources: bounded text chunks, the spec validated like a file); `--set` overrides apply to it as they
apply to a spec file (scale.overrides), and the render is of the PNG's own plan item (its image, or its
frame: a 2D/3D frame renders from frame 0 on) unless `--item` says otherwise. The trust model is
rebuild's (repro.rebuild.source_policy): files the spec names are read only inside the PNG's own folder (its
git work tree), `--allow-path` folders and the folder a manifest beside it recorded; URLs only with
`--allow-network`. Unlike `rebuild`, the result is a new run: nothing is compared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import SpecError
from ..record import pngmeta


@dataclass
class Remix:
    """What `render IMAGE.png` renders: the spec, the items, where relative paths resolve and what may be read."""

    spec: Any  # JobSpec
    base_document: dict[str, Any]  # the PNG's spec: what the run's name says it differs from
    items: list[int] | None
    spec_dir: str | None
    access: Any  # spec.access.InputPolicy


def is_png_source(path: str | os.PathLike) -> bool:
    return Path(path).is_file() and pngmeta.is_png(path)


def remix_from_png(png: str | os.PathLike, sets: Sequence[str] = (), *, items: Sequence[int] | None = None,
                   allow_paths: Iterable[str | os.PathLike] = (), allow_network: bool = False) -> Remix:
    """The render request for a PNG written by disco-spec, with `sets` applied (SpecError naming what is wrong)."""
    from ..repro.rebuild import source_policy
    from ..repro.sources import load_source
    from .overrides import document_with_overrides

    src = load_source(png, arg="IMAGE.png")  # a PNG without disco-spec's spec chunk is refused here
    base = dict(src.spec_document)
    spec = document_with_overrides(base, sets) if sets else src.spec()
    if items:
        chosen: list[int] | None = list(items)
    elif src.item is not None:
        chosen = [src.item]
    else:
        raise SpecError(str(png), [(str(png), "the PNG does not say which item it is (no item text chunk); pass --item")])
    access = source_policy(src, allow_paths=allow_paths, allow_network=allow_network)
    return Remix(spec=spec, base_document=base, items=chosen, spec_dir=src.spec_dir, access=access)

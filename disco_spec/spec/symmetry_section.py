"""The spec's [symmetry] section: DD 5.3+'s mirror symmetry (DD 5.7 ``disco.py``: ``use_horizontal_symmetry``,
``use_vertical_symmetry``, ``transformation_percent``; applied by ``symmetry_transformation_fn``).

Off by default, and then left out of the spec's canonical document (``spec.load.spec_to_document``), so every
spec written before it keeps its hash. Pydantic only, no torch.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .fields import Finite, Section

DD57_TRANSFORMATION_PERCENT = (0.09,)  # DD 5.7's form default


class SymmetrySection(Section):
    """Mirror one half of the image onto the other at chosen fractions of the steps (DD 5.3+, DDIM only)."""

    use_horizontal_symmetry: bool = Field(
        default=False, description="Copy the left half, mirrored, onto the right half at the transformation steps.")
    use_vertical_symmetry: bool = Field(
        default=False, description="Copy the top half, mirrored, onto the bottom half at the transformation steps.")
    transformation_percent: list[Annotated[Finite, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: list(DD57_TRANSFORMATION_PERCENT), max_length=100,
        description="Fractions of the item's steps (0-1) at which the image is mirrored: before the step whose "
        "index is int(iterations * (1 - p)), as DD 5.7. Only with DDIM (DD's PLMS ignores symmetry).",
    )

    def enabled(self) -> bool:
        return self.use_horizontal_symmetry or self.use_vertical_symmetry

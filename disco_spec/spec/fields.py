"""The building blocks of the spec's sections: the strict base model, the number types, and the hard bounds
on the work a spec can ask for (documented in docs/security.md). Imports only pydantic."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


# Hard bounds on work a spec can ask for before anything renders (documented in docs/security.md).
# DD's default is 10,000 frames; a plan holds one item per frame (~3 KB each).
MAX_FRAMES = 100_000


# Keys of one prompt or key-frame schedule (one per frame of the longest animation).
MAX_SCHEDULE_KEYS = MAX_FRAMES


MAX_BATCH_NAME_LENGTH = 120
# The longest suffix a file name adds to batch_name: a partial save `_99999-10000.png` (16) and room to spare.
MAX_BATCH_NAME_SUFFIX_BYTES = 24


class Section(BaseModel):
    """The base of every spec section: unknown keys refused, values frozen, types strict."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


Finite = Annotated[float, Field(allow_inf_nan=False)]


Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


NonNegInt = Annotated[int, Field(ge=0)]


Side = Annotated[int, Field(ge=64, le=8192)]

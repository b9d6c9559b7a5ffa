"""Where two renders part: the first sampler step whose checksum differs, read from two runs' journals.

Each finished item's journal line (run.journal, frames.jsonl) holds, per sampler step j (0-based, the first
step not skipped), the checksum of x_t after the step and of the step's x̂₀ (engine.checksum: exact, the same on
any device that holds the same bytes). Two renders of one recipe are identical through step k when every
checksum up to k agrees; the first step where one differs is where they parted (a nondeterministic kernel, a
changed setting, a changed input). Later steps differ as a consequence: only the first one says anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKSUM_NAMES = ("x_t", "x0")


@dataclass(frozen=True)
class Divergence:
    item: int
    frame: int
    steps: int  # steps compared (both runs recorded them)
    first_difference: int | None  # the first step whose checksum differs (None: identical at every step)
    of: str | None = None  # which tensor differed first there: "x_t" or "x0"

    def text(self) -> str:
        where = f"item {self.item}"
        if self.first_difference is None:
            return f"{where}: identical at all {self.steps} steps"
        if self.first_difference == 0:
            return f"{where}: different from the first step (step 0 of frame {self.frame}, {self.of})"
        k = self.first_difference
        return (f"{where}: identical through step {k - 1} of frame {self.frame}; first difference at step {k} "
                f"({self.of})")

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "frame": self.frame, "steps": self.steps,
                "first_difference": self.first_difference, "of": self.of}


def step_checksums(run_dir: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """item -> its journal line, for the items whose line records step checksums."""
    from ..run.journal import read_entries  # the bounded reader of frames.jsonl

    out = {}
    for e in read_entries(Path(run_dir)):
        sums = e.get("checksums")
        if isinstance(sums, dict) and all(isinstance(sums.get(n), list) for n in CHECKSUM_NAMES):
            out[e["item"]] = e
    return out


def divergence(run_a: str | os.PathLike, run_b: str | os.PathLike) -> list[Divergence]:
    """For each item both runs journalled with checksums: how far they agree."""
    a, b = step_checksums(run_a), step_checksums(run_b)
    found = []
    for item in sorted(set(a) & set(b)):
        sa, sb = a[item]["checksums"], b[item]["checksums"]
        n = min(len(sa["x_t"]), len(sb["x_t"]), len(sa["x0"]), len(sb["x0"]))
        first = of = None
        for j in range(n):
            # x̂₀ is computed before x_t within a step: name it first when both differ
            for name in ("x0", "x_t"):
                if sa[name][j] != sb[name][j]:
                    first, of = j, name
                    break
            if first is not None:
                break
        if first is None and len(sa["x_t"]) != len(sb["x_t"]):
            first, of = n, "x_t"  # one ran more steps
        frame = a[item].get("frame")
        found.append(Divergence(item=item, frame=frame if isinstance(frame, int) else item, steps=n,
                                first_difference=first, of=of))
    return found

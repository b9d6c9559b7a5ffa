"""A render that ran elsewhere (a backend worker) shown to observers as if they had watched it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .records import StepEvent


@dataclass(frozen=True)
class StepStat:
    item: int
    j: int
    k: int
    total: int
    stats: dict[str, float]


def replay_observers(result: Any, steps: Sequence[StepStat], observers: Iterable[Any]) -> None:
    """Show a finished render to observers as if they had watched it (no previews): start, steps,
    outputs, end. Used for MLflow tracking of renders that ran elsewhere."""
    observers = list(observers)
    if not observers:
        return
    items = {it.index: it for it in result.plan.items}
    for o in observers:
        o.on_start(result)
    for s in steps:
        event = StepEvent(item=items[s.item], j=s.j, k=s.k, total=s.total, stats=dict(s.stats), preview=None)
        for o in observers:
            o.on_step(event)
    for rec in result.outputs:
        for o in observers:
            o.on_output(result, rec)
    for o in observers:
        o.on_end(result)

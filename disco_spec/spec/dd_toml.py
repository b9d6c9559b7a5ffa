"""Writing an imported DD settings report as readable TOML (:func:`report_to_toml`).

A header comment says where the spec came from, how many values are assumed and how many notes to
read; then the document's sections follow in the spec's order, with None entries dropped (TOML has
no null). Uses tomli-w; no torch.
"""

from __future__ import annotations

from typing import Any

import tomli_w

from .dd_state import ImportResult
from .models import JobSpec

__all__ = ["report_to_toml"]


def report_to_toml(result: ImportResult) -> str:
    """The imported spec as readable TOML: a header comment, then sections in the spec's order."""
    doc = result.document
    source = (doc.get("imported_from") or {}).get("source", "a DD settings report")
    lines = [
        f"# Imported by `disco-spec import-dd` from {source} (DD version: {result.detected_version}).",
        f"# {len(result.assumed)} values are not in the report: DD defaults or guesses, listed in",
        "# imported_from.assumed. Check animation.animation_mode and run.n_batches in particular,",
        f"# and read the {len(result.warnings)} notes in imported_from.warnings.",
    ]
    ordered = {k: doc[k] for k in _top_level_order() if k in doc}
    ordered.update({k: v for k, v in doc.items() if k not in ordered})
    return "\n".join(lines) + "\n\n" + tomli_w.dumps(_drop_none(ordered))


def _top_level_order() -> list[str]:
    return [info.alias or name for name, info in JobSpec.model_fields.items()]


def _drop_none(value: Any) -> Any:
    """TOML has no null: drop None entries (the spec's default for every optional field is None)."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value

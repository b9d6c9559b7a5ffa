"""What one DD settings-report import works on and what it returns.

:class:`ImportResult` is the value :func:`~disco_spec.spec.dd_import.import_dd_report` returns.
``_ImportState`` is the base the importer's step classes share (the value mapping, the
animation_mode / n_batches heuristics and the importer itself): the report, the facts taken from its
file name, the spec values decided so far, the assumed spec paths and the warnings, with the small
helpers that record them. Standard library and the project's SpecError only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecError

__all__ = ["ImportResult"]


@dataclass
class ImportResult:
    document: dict  # a spec document (plain dict) that validates with validate_document
    detected_version: str  # "5.1-5.2", "5.0", "5.1 (early, turbo_frame_blend)", ">=5.3", ">=5.4", ">=5.5", ...
    assumed: list[str] = field(default_factory=list)  # dotted spec paths whose values were NOT in the report
    warnings: list[str] = field(default_factory=list)  # unmapped keys, version notes, conversions, ...


class _ImportState:
    """The report being imported and what has been decided so far. `values` maps (section, field) -> value."""

    def __init__(self, path: Path, report: dict[str, Any], batch_name: str, batch_num: int | None,
                 separator: str | None, version: str, warnings: list[str]):
        self.path = path
        self.report = report
        self.batch_name = batch_name
        self.batch_num = batch_num
        self.separator = separator
        self.version = version
        self.warnings = warnings
        self.assumed: list[str] = []
        self.values: dict[tuple[str, str], Any] = {}
        self.extra_clip: list[dict[str, str]] = []
        self.mode_from_user = False
        self.from_file: set[str] = set()  # spec paths the file's notebook variables set
        self.notebook_keys: list[str] = []  # the file's keys read as notebook variables

    # -- helpers --------------------------------------------------------------------------------

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def assume(self, dotted: str) -> None:
        if dotted not in self.assumed:
            self.assumed.append(dotted)

    def set(self, dotted: str, value: Any) -> None:
        section, name = dotted.split(".", 1)
        self.values[(section, name)] = value

    def get(self, dotted: str, default: Any = None) -> Any:
        section, name = dotted.split(".", 1)
        return self.values.get((section, name), default)

    def fail(self, key: str, msg: str) -> SpecError:
        return SpecError(f"{self.path.name}: report key {key!r}: {msg}", [(key, msg)])

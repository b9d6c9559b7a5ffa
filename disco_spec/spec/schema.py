"""The published JSON Schema, generated from the spec models (the single source of truth)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .models import JobSpec

SCHEMA_ID = "https://disco-spec.dev/schemas/disco-spec.v1.schema.json"
SCHEMA_FILE = "disco-spec.v1.schema.json"


def build_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for spec version 1.

    It checks structure, types, enums and ranges. String grammars (key frames, cut schedules, prompt
    weights) and cross-field rules (skip_steps < steps) are checked by `disco-spec validate`.
    """
    schema = JobSpec.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def schema_text() -> str:
    return json.dumps(build_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def checked_in_schema_path() -> Path:
    """schemas/ in a source checkout."""
    return Path(__file__).resolve().parents[2] / "schemas" / SCHEMA_FILE

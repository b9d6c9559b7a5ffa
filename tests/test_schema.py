"""The checked-in JSON Schema is generated from the models, and agrees with them."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from disco_spec.errors import SpecError
from disco_spec.spec.schema import checked_in_schema_path, schema_text
from disco_spec.spec.load import validate_document


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(checked_in_schema_path().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_checked_in_schema_is_not_stale() -> None:
    assert checked_in_schema_path().read_text() == schema_text(), (
        "schemas/disco-spec.v1.schema.json is stale: run `disco-spec schema > schemas/disco-spec.v1.schema.json`"
    )


def _pydantic_ok(doc: dict) -> bool:
    try:
        validate_document(doc)
        return True
    except SpecError:
        return False


def test_examples_valid_under_both(validator, specs_dir: Path) -> None:
    for f in sorted(specs_dir.glob("*.toml")):
        doc = tomllib.loads(f.read_text())
        assert not list(validator.iter_errors(doc)), f
        assert _pydantic_ok(doc), f


# Structural problems both validators must reject (string grammars and cross-field rules are pydantic-only).
INVALID = [
    {"schema_version": 2},
    {"schema_version": 1, "unknown": 1},
    {"schema_version": 1, "run": {"n_batches": "3"}},
    {"schema_version": 1, "run": {"n_batches": 0}},
    {"schema_version": 1, "run": {"set_seed": -1}},
    {"schema_version": 1, "run": {"set_seed": "lucky"}},
    {"schema_version": 1, "diffusion": {"eta": True}},
    {"schema_version": 1, "diffusion": {"width_height": [640]}},
    {"schema_version": 1, "diffusion": {"width_height": [640, 32]}},
    {"schema_version": 1, "diffusion": {"diffusion_sampling_mode": "euler"}},
    {"schema_version": 1, "models": {"ViTB32": "yes"}},
    {"schema_version": 1, "models": {"extra_clip_models": [{"nme": "tiny-clip"}]}},
    {"schema_version": 1, "animation": {"animation_mode": "4D"}},
    {"schema_version": 1, "turbo": {"turbo_steps": 0}},
    {"schema_version": 1, "camera_3d": {"padding_mode": "wrap"}},
    {"schema_version": 1, "prompts": {"text_prompts": {"0": "not a list"}}},
    {"schema_version": 1, "cuts": {"cut_overview": [{"value": 4}]}},
    {"schema_version": 1, "saving": {"intermediate_saves": -1}},
    {"schema_version": 1, "video": {"crf": 60}},
]


@pytest.mark.parametrize("doc", INVALID, ids=[json.dumps(d)[:60] for d in INVALID])
def test_invalid_examples_rejected_by_both(validator, doc: dict) -> None:
    assert list(validator.iter_errors(doc)), "jsonschema accepted it"
    assert not _pydantic_ok(doc), "pydantic accepted it"


def test_schema_allows_dollar_schema_in_json(validator) -> None:
    doc = {"$schema": "https://example/disco-spec.v1.schema.json", "schema_version": 1}
    assert not list(validator.iter_errors(doc)) and _pydantic_ok(copy.deepcopy(doc))

"""Editor support (docs/editor-support.md): what editors read to offer completion and checking.

JSON specs name the schema with a `$schema` key (VS Code, JetBrains); TOML specs with taplo's first-line
`#:schema PATH` directive (Even Better TOML, taplo LSP). Both paths are relative to the spec file; the
tests resolve them as editors do, validate with the referenced file (jsonschema), and check that the
same documents pass `disco-spec validate`.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest

from disco_spec.errors import SpecError
from disco_spec.spec.load import load_spec, validate_document

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "disco-spec.v1.schema.json"
JSON_EXAMPLE = ROOT / "docs" / "examples" / "smoke.json"
TOML_SPECS = sorted((ROOT / "specs").rglob("*.toml"))
DIRECTIVE = re.compile(r"^#:schema\s+(\S+)\s*$")


def referenced_schema(spec: Path, ref: str) -> Path:
    assert not re.match(r"^[a-z]+://", ref), f"{spec}: use a relative path so that it works offline ({ref})"
    return (spec.parent / ref).resolve()


def validator_for(path: Path) -> jsonschema.Draft202012Validator:
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_json_spec_validates_with_the_schema_its_dollar_schema_names():
    doc = json.loads(JSON_EXAMPLE.read_text(encoding="utf-8"))
    ref = doc["$schema"]
    path = referenced_schema(JSON_EXAMPLE, ref)
    assert path == SCHEMA.resolve()
    v = validator_for(path)
    assert list(v.iter_errors(doc)) == []
    load_spec(JSON_EXAMPLE)  # `$schema` is an allowed key for disco-spec too

    bad = copy.deepcopy(doc)
    bad["guidance"]["clip_guidance_scale"] = "high"
    bad["diffusion"]["stepz"] = 3
    errors = {tuple(e.absolute_path): e for e in v.iter_errors(bad)}
    assert ("guidance", "clip_guidance_scale") in errors  # what an editor underlines
    assert any("stepz" in e.message for e in errors.values())
    with pytest.raises(SpecError) as exc:
        validate_document(bad)
    assert {loc for loc, _ in exc.value.problems} >= {"guidance.clip_guidance_scale", "diffusion.stepz"}


@pytest.mark.parametrize("spec", TOML_SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_toml_specs_start_with_a_schema_directive(spec: Path):
    first = spec.read_text(encoding="utf-8").splitlines()[0]
    m = DIRECTIVE.match(first)
    assert m, f"{spec}: the first line must be `#:schema <path to disco-spec.v1.schema.json>` (got {first!r})"
    path = referenced_schema(spec, m.group(1))
    assert path.is_file(), f"{spec}: {m.group(1)} does not exist"
    assert path == SCHEMA.resolve()
    doc = tomllib.loads(spec.read_text(encoding="utf-8"))
    assert [e.message for e in validator_for(path).iter_errors(doc)] == []


def test_taplo_example_in_the_docs_points_at_the_schema():
    text = (ROOT / "docs" / "editor-support.md").read_text(encoding="utf-8")
    assert "#:schema ../schemas/disco-spec.v1.schema.json" in text
    assert '"$schema": "../schemas/disco-spec.v1.schema.json"' in text
    block = re.search(r"```toml\n# \.taplo\.toml\n(.*?)```", text, re.S)
    assert block, "docs/editor-support.md has the .taplo.toml example"
    cfg = tomllib.loads(block.group(1))
    (rule,) = cfg["rule"]
    assert rule["schema"]["path"].endswith("schemas/disco-spec.v1.schema.json")

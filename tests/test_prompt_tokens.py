"""Prompts longer than CLIP's 77 tokens are refused before any model loads (issue 14 item 5)."""

from __future__ import annotations

import copy

import pytest

from cli_helpers import run_cli, write_spec
from disco_spec.errors import SpecError
from disco_spec.spec.load import validate_document
from disco_spec.spec.prompt_tokens import check_prompt_lengths

LONG = "a " * 76  # 76 words + start + end = 78 tokens
FITS = "a " * 75


def _doc(smoke_doc: dict, prompts: dict) -> dict:
    doc = copy.deepcopy(smoke_doc)
    doc["prompts"]["text_prompts"] = prompts
    return doc


def test_validate_refuses_a_long_prompt_naming_it(tmp_path, smoke_doc):
    path = write_spec(tmp_path / "long.toml", _doc(smoke_doc, {"0": ["ok"], "5": ["fine", LONG]}))
    code, _, err = run_cli("validate", str(path))
    assert code == 2
    assert "prompts.text_prompts.5[1]" in err and "78 CLIP tokens" in err and "77" in err


def test_render_refuses_before_models_load(tmp_path, smoke_doc):
    path = write_spec(tmp_path / "long.toml", _doc(smoke_doc, {"0": [LONG]}))
    out = tmp_path / "out"
    code, _, err = run_cli("render", str(path), "--out", str(out), "--no-track", "-q")
    assert code == 2 and "prompts.text_prompts.0[0]" in err
    assert not out.exists()  # refused before a run folder (and any model) was made


def test_prompt_that_fits_exactly_passes(smoke_doc):
    check_prompt_lengths(validate_document(_doc(smoke_doc, {"0": [FITS]})))


def test_weight_suffix_counts_only_when_it_is_encoded(smoke_doc):
    doc = _doc(smoke_doc, {"0": [FITS + ":2"]})
    with pytest.raises(SpecError):
        check_prompt_lengths(validate_document(doc))  # DD encodes 'text:2' (quirk Q1)
    doc["guidance"]["text_prompt_weight_suffix_in_text"] = False
    check_prompt_lengths(validate_document(doc))

"""Hostile spec documents end as exit 2 naming the problem, never exit 3 (issue 14 items 5 and 7)."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli
from disco_spec.errors import SpecError, one_line
from disco_spec.spec import load
from disco_spec.spec.load import MAX_NESTING, read_document, validate_document

CASES = {
    "bigint.toml": "schema_version = 1\n[run]\nn_batches = " + "9" * 5000 + "\n",
    "bigint.json": '{"schema_version": 1, "run": {"n_batches": ' + "9" * 5000 + "}}",
    "deep.toml": "schema_version = 1\nx = " + "[" * 400 + "]" * 400 + "\n",
    "deep.json": '{"schema_version": 1, "x": ' + "[" * 5000 + "]" * 5000 + "}",
    "deep-tables.toml": "schema_version = 1\n" + "[" + ".".join(["t"] * 300) + "]\nk = 1\n",
    "deep-inline.toml": "schema_version = 1\nx = " + "{a = " * 300 + "1" + "}" * 300 + "\n",
}
LIMIT_WORDS = {"bigint": "4300 digits", "deep": str(MAX_NESTING)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_documents_exit_2_naming_the_limit(tmp_path, name):
    path = tmp_path / name
    path.write_text(CASES[name])
    code, _, err = run_cli("validate", str(path))
    assert code == 2, err
    assert "internal error" not in err
    assert LIMIT_WORDS[name.split("-")[0].split(".")[0]] in err


def test_deep_document_from_elsewhere_is_a_spec_error():
    doc: dict = {"schema_version": 1}
    cur = doc
    for _ in range(2000):  # e.g. a spec carried in a PNG: validate_document must refuse it too
        cur["x"] = {}
        cur = cur["x"]
    with pytest.raises(SpecError, match="MAX_NESTING"):
        validate_document(doc)


def test_oversized_spec_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(load, "MAX_SPEC_BYTES", 1000)
    path = tmp_path / "big.toml"
    path.write_text("schema_version = 1\n" + "# padding\n" * 200)
    with pytest.raises(SpecError, match="MAX_SPEC_BYTES"):
        read_document(path)


def test_key_with_newline_stays_on_one_line(tmp_path):
    path = tmp_path / "nl.json"
    path.write_text('{"schema_version": 1, "run": {"bad\\nkey": 1, "x\\u001b[31m": 2}}')
    code, _, err = run_cli("validate", str(path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2, lines  # one line per problem
    assert all(ln.startswith(f"{path}: run.") for ln in lines)
    assert "\x1b" not in err and "bad\\nkey" in err


def test_one_line_escapes_only_what_it_must():
    assert one_line("été 夜 ok") == "été 夜 ok"
    assert one_line("a\nb\tc\x00\u2028") == "a\\nb\\tc\\x00\\u2028"

"""Helpers shared by the CLI tests: run `disco-spec` in-process and write spec files."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import tomllib

import tomli_w

from disco_spec.cli import app as cli


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run the console entry point with `args`; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = ["disco-spec", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    return code, out.getvalue(), err.getvalue()


def smoke_doc(**sections: dict) -> dict:
    """specs/smoke.toml with `sections` merged in (each section's keys updated, new sections added)."""
    doc = tomllib.loads((Path(__file__).resolve().parent.parent / "specs" / "smoke.toml").read_text())
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    return doc


def smoke_spec(**sections: dict):
    """smoke_doc(**sections), validated: the JobSpec a render test passes to `render`."""
    from disco_spec.spec.load import validate_document

    return validate_document(smoke_doc(**sections))


def small_smoke_doc(**sections: dict) -> dict:
    """specs/smoke.toml at 6 steps (2 skipped), with `sections` merged in: a spec document a test renders fast."""
    doc = smoke_doc(diffusion={"steps": 6}, init={"skip_steps": 2})
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    return doc


def write_spec(path: Path, doc: dict) -> Path:
    path.write_text(tomli_w.dumps(doc))
    return path

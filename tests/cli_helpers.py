"""Helpers shared by the CLI tests: run `disco-spec` in-process and write spec files."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

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


def write_spec(path: Path, doc: dict) -> Path:
    path.write_text(tomli_w.dumps(doc))
    return path

"""`disco-spec new [FILE]`: write a starter spec (added to the main app by `register`).

A thin wrapper over disco_spec.spec.starter. Exit codes: 0 written, 2 the file exists (without --force) or
the name is unusable (SpecError, mapped by cli.main).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

DEFAULT_FILE = Path("disco.toml")


def new(
    file: Path = typer.Argument(DEFAULT_FILE, metavar="[FILE]", help="Where to write the spec ('-' prints it)."),
    force: bool = typer.Option(False, "--force", help="Overwrite FILE if it exists."),
) -> None:
    """Write a starter spec: every setting at Disco Diffusion 5.2's default, each with a one-line comment."""
    from ..spec.starter import starter_toml, write_starter

    if str(file) == "-":
        sys.stdout.write(starter_toml())
        return
    written = write_starter(file, force=force)
    typer.echo(f"wrote {written}; check it with `disco-spec validate {written}`", err=True)


def register(app: typer.Typer) -> None:
    """Add `new` to the `disco-spec` app."""
    app.command("new")(new)

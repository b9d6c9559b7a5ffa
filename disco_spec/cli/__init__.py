"""The command line: a thin typer app, one module per command group; every command calls a library
function that tests can call, and maps DiscoSpecError to exit codes (2 bad input, 1 a "no", 3 a bug).

May import: everything.
"""

from .app import app, main

__all__ = ["app", "main"]

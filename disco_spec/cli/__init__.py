"""The command line: a thin typer app (cli.app, with `main` for the `disco-spec` command), one module per
command group; every command calls a library function tests can call, and maps DiscoSpecError to exit
codes (2 bad input, 1 a "no", 3 a bug).

May import: everything.
"""

"""`python -m disco_spec.cli ...` runs the same app as the `disco-spec` command."""

from .app import main

main()

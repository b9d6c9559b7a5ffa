"""Errors that the CLI maps to exit codes: 2 = your input is wrong, 1 = ran and the answer is no."""

from __future__ import annotations

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """`text` with control characters escaped, so that one problem stays one line of a terminal.

    Keys and values come from untrusted files: a key holding a newline (or a terminal escape) must
    not split an error message or restyle the terminal.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return "".join(out)


class DiscoSpecError(Exception):
    """Base class for every error disco-spec reports to users without a traceback."""

    exit_code = 1


class SpecError(DiscoSpecError):
    """A spec (or other user input) is invalid. `problems` holds (field_path, message) pairs."""

    exit_code = 2

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(one_line(str(message)))
        self.problems = [(one_line(str(loc)), one_line(str(msg))) for loc, msg in problems or []]


class ModelError(DiscoSpecError):
    """A model could not be resolved, fetched, verified or loaded."""

    exit_code = 1


class WeightsHashMismatch(ModelError):
    """A weight file's SHA-256 differs from the one expected; the file is never used."""

    def __init__(self, what: str, path: str, expected: str, actual: str, *, own_file: bool = False):
        # A cache file is disco-spec's to replace; a file the user named is theirs: never suggest deleting it.
        advice = ("Check that the spec names the intended file, or update its sha256 if the file changed on purpose."
                  if own_file else "Delete it and fetch again, or fix the sha256 in the spec.")
        super().__init__(
            f"{what}: SHA-256 mismatch for {path}\n  expected {expected}\n  actual   {actual}\n"
            f"The file was not used. {advice}"
        )
        self.expected = expected
        self.actual = actual


class RenderError(DiscoSpecError):
    """A render could not complete."""

    exit_code = 1


class Interrupted(DiscoSpecError):
    """Ctrl-C (SIGINT, exit 130) or SIGTERM (exit 143) during a command; the message says how to continue."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """Raised by the CLI's SIGTERM handler, so a terminated render unwinds like a Ctrl-C: the run folder's lock
    is released, a tracking run is closed, every finished frame stays journalled for `--resume`."""

"""The error every parser of DD's schedule strings raises, and the frame-number check they share.

:class:`ScheduleError` is what the pieces behind :mod:`disco_spec.spec.schedules` (``prompt_parse``,
``keyframes``, ``cut_schedules``, ``step_numbers``) raise for a malformed prompt or schedule, with the
character position of the problem where there is one; ``check_frame_key`` is the one rule that prompt
schedules and key-frame tables both apply to their frame numbers. It lives here, below all of them, so
they share it without importing each other. Standard library only.
"""

__all__ = ["ScheduleError", "check_frame_key"]


class ScheduleError(ValueError):
    """A malformed schedule/prompt string. .position is the 0-based character index of the problem (or None)."""

    def __init__(self, message: str, position: int | None = None):
        self.message = message
        self.position = position
        text = message if position is None else f"{message} at character {position}"
        super().__init__(text)

    def __reduce__(self):
        # Default exception pickling would call ScheduleError(str(self)) and lose .position.
        return (type(self), (self.message, self.position))


def check_frame_key(key: object, what: str) -> int:
    """Keys must be real non-negative ints; DD's pandas would silently mis-place anything else
    (disco.py:2158 (split_prompts))."""
    if isinstance(key, bool) or not isinstance(key, int):
        raise ScheduleError(f"{what} key {key!r} must be an integer frame number (convert string keys first)")
    if key < 0:
        raise ScheduleError(f"{what} key {key} must not be negative")
    return key

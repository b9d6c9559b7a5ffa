"""Disco Diffusion 5.2's prompts and prompt schedules (disco.py:783 (parse_prompt),
disco.py:2158 (split_prompts)).

Splits a text or image prompt into its text and ``:weight`` exactly as DD's ``parse_prompt`` does,
normalises a prompt list's weights the way DD does, and picks the prompt list in force at a frame from
a ``{frame: [prompts]}`` schedule. Pure functions, standard library only; import them from
:mod:`disco_spec.spec.schedules`.
"""

import bisect
import math
from collections.abc import Callable, Mapping, Sequence

from .schedule_error import ScheduleError, check_frame_key

__all__ = ["normalize_weights", "parse_prompt", "prompt_schedule_lookup", "prompts_for_frame"]


# --------------------------------------------------------------------------------------------------
# Prompts and weights: disco.py:783 (parse_prompt), disco.py:1205-1207 (do_run)
# --------------------------------------------------------------------------------------------------


def _split_prompt(prompt: str) -> tuple[str, str | None]:
    """Split off DD's weight piece, exactly as DD's ``parse_prompt`` does (disco.py:783 (parse_prompt)).

    URLs split from the right at most twice so the scheme's colon survives; everything else splits on
    the last colon only. Returns (text, weight piece or None).
    """
    if prompt.startswith("http://") or prompt.startswith("https://"):
        pieces = prompt.rsplit(":", 2)
        pieces = [pieces[0] + ":" + pieces[1], *pieces[2:]]
    else:
        pieces = prompt.rsplit(":", 1)
    if len(pieces) == 1:
        return pieces[0], None
    return pieces[0], pieces[1]


def parse_prompt(prompt: str) -> tuple[str, float]:
    """Return (text without the ``:weight`` suffix, weight) for a text or image prompt (disco.py:783 (parse_prompt)).

    The weight piece is converted with Python ``float()`` like DD does, so spaces, signs, exponents,
    ``inf`` and ``nan`` are accepted; a piece ``float()`` rejects (``"a: b"``, ``"C:\\img.png"``) is an
    error here as in DD, reported with the position of the piece (the character after the colon).

    Note DD encodes the *unstripped* prompt with CLIP (quirk Q1); this function only says what the text
    and weight are.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"a prompt must be a string, not {type(prompt).__name__}")
    text, piece = _split_prompt(prompt)
    if piece is None:
        return text, 1.0
    position = len(prompt) - len(piece)
    try:
        weight = float(piece)
    except ValueError:
        raise ScheduleError(
            f"prompt weight {piece!r} is not a number (text after the last ':' is read as a weight, as in DD)",
            position,
        ) from None
    return text, weight


def normalize_weights(weights: Sequence[float]) -> list[float]:
    """Divide prompt weights by the absolute value of their sum, keeping signs (disco.py:1205-1207 (do_run), quirk Q6).

    DD refuses weights whose sum is within 1e-3 of zero ("The weights must not sum to 0."), because the
    division would blow up. DD does this in float32 on the device; we use an exactly rounded double sum,
    so sums within a float32 rounding of 1e-3 may be judged differently and results can differ in the
    last float32 bit. Non-finite weights (``"sky:inf"``) would make every DD weight NaN; we reject them.
    """
    values = [float(w) for w in weights]
    for i, w in enumerate(values):
        if not math.isfinite(w):
            raise ScheduleError(f"prompt weight #{i} is {w!r}; weights must be finite")
    total = math.fsum(values)
    if abs(total) < 1e-3:
        raise ScheduleError(
            f"The weights must not sum to 0. (they sum to {total!r}; |sum| must be at least 0.001)"
        )
    scale = abs(total)
    return [w / scale for w in values]


# --------------------------------------------------------------------------------------------------
# Prompt schedules: disco.py:2158 (split_prompts), disco.py:1151-1156 (do_run)
# --------------------------------------------------------------------------------------------------


def prompts_for_frame(prompts: Mapping[int, Sequence[str]], frame: int) -> list[str]:
    """The prompt list in force at ``frame``: that of the greatest key <= frame, else the first key's
    (disco.py:2158 (split_prompts)).

    DD builds a pandas series of length ``max_frames``, forward-fills then back-fills it, and uses
    ``series[-1]`` for frames >= max_frames. Callers only ask for frames < max_frames, for which the
    rule above is the same, with one pathological exception: if *every* key is >= max_frames, DD's
    back-fill uses the key that comes first in the dict (pandas appends such keys in insertion order)
    while we use the smallest key. Negative keys (appended at the end by pandas, so DD back-fills early
    frames from a later key) and string lists (which DD would iterate character by character) are
    rejected. An empty mapping gives ``[]``.
    """
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        raise ValueError(f"frame must be a non-negative integer, not {frame!r}")
    if not prompts:
        return []
    best: int | None = None
    for key in prompts:
        check_frame_key(key, "prompt schedule")
        if key <= frame and (best is None or key > best):
            best = key
    if best is None:
        best = min(prompts)
    chosen = prompts[best]
    if isinstance(chosen, str):
        raise ScheduleError(f"prompts for frame {best} must be a list of strings, not a single string")
    return list(chosen)


def prompt_schedule_lookup(prompts: Mapping[int, Sequence[str]]) -> Callable[[int], list[str]]:
    """``frame -> prompts_for_frame(prompts, frame)``, with the keys checked and sorted once.

    A plan asks for every frame of a long animation; checking all keys per frame made a 20,000-key
    schedule quadratic. Each look-up here is a bisection: O(log keys).
    """
    keys = sorted(check_frame_key(key, "prompt schedule") for key in prompts)
    for key in keys:
        if isinstance(prompts[key], str):
            raise ScheduleError(f"prompts for frame {key} must be a list of strings, not a single string")
    lists = [list(prompts[key]) for key in keys]

    def at(frame: int) -> list[str]:
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise ValueError(f"frame must be a non-negative integer, not {frame!r}")
        if not keys:
            return []
        i = bisect.bisect_right(keys, frame) - 1
        return list(lists[max(i, 0)])  # before the first key: the first key's list (back-fill)

    return at

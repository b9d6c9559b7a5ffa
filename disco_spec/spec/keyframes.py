"""Disco Diffusion 5.2's key-frame strings and their per-frame values (disco.py:2049 (parse_key_frames),
disco.py:2094 (get_inbetweens)).

Parses strings such as ``"0: (1), 10: (1.05)"`` with DD's own regular expression, validates the
structured ``{frame: value}`` form, and expands key frames into one value per frame, bit-identical to
DD's pandas/numpy linear interpolation. Pure functions, standard library only; import them from
:mod:`disco_spec.spec.schedules`.
"""

import math
import re
from collections.abc import Mapping

from .schedule_error import ScheduleError, check_frame_key

__all__ = ["keyframe_series", "keyframes_from_table", "parse_keyframes"]

# DD's own pattern: digits, ':', optional whitespace, '(', shortest anything, ')'.
_KEYFRAME = re.compile(r"([0-9]+):[\s]*\(([\S\s]*?)\)")
_WRAP_PREFIX = "0: ("


def _keyframe_value(raw: str, position: int) -> float:
    """Convert one parenthesised value the way DD's ``astype(float)`` does (i.e. ``float()``).

    Non-finite values are rejected: DD would produce NaN motion (a broken render or a crash).
    """
    try:
        value = float(raw)
    except ValueError:
        raise ScheduleError(f"key-frame value {raw!r} is not a number", position) from None
    if not math.isfinite(value):
        raise ScheduleError(f"key-frame value {raw!r} is not finite", position)
    return value


def parse_keyframes(text: str) -> dict[int, float]:
    """Parse a DD key-frame string such as ``"0: (1), 10: (1.05)"`` into {frame: value}
    (disco.py:2049 (parse_key_frames)).

    Uses DD's regular expression; text between matches is ignored. If the string is non-empty and
    nothing matches, DD retries with ``"0: (<text>)"``, so ``"1.05"`` means 1.05 everywhere; error
    positions then still refer to ``text``. Later duplicates win but keep the first one's place in the
    dict order (plain dict assignment, as DD does); the order matters to :func:`keyframe_series` for
    keys >= max_frames. Like DD's pattern, a ``-`` before a frame number is not part of it:
    ``"-5: (1)"`` is frame 5.
    """
    if not isinstance(text, str):
        raise TypeError(f"a key-frame string must be a string, not {type(text).__name__}")
    if not text.strip():
        raise ScheduleError("key-frame string is empty", 0)
    source, offset = text, 0
    matches = _keyframe_matches(source)
    if not matches:
        source, offset = _WRAP_PREFIX + text + ")", -len(_WRAP_PREFIX)
        matches = _keyframe_matches(source)
    frames: dict[int, float] = {}
    for digits_start, digits_end, value_start, value_end in matches:
        frame_pos = max(digits_start + offset, 0)
        try:
            frame = int(source[digits_start:digits_end])
        except ValueError:  # more digits than int() accepts
            raise ScheduleError("key-frame number is too long", frame_pos) from None
        frames[frame] = _keyframe_value(source[value_start:value_end], value_start + offset)
    return frames


def _keyframe_matches(text: str) -> list[tuple[int, int, int, int]]:
    """What ``_KEYFRAME.finditer(text)`` finds, as (digits start, end, value start, end), in linear time.

    The regular expression backtracks: every start inside a long digit run, or before an unclosed
    "(", rescans to the end of the text, so a 60 kB spec string took 30 s. The pattern is
    unambiguous (digits cannot be ':' and whitespace cannot be '('), so one left-to-right scan gives
    the same matches: a failed candidate fails for every start in its digit run, and one whose '('
    has no ')' after it means no later candidate can close either.
    """
    found: list[tuple[int, int, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        if not "0" <= text[i] <= "9":
            i += 1
            continue
        digits_end = i
        while digits_end < n and "0" <= text[digits_end] <= "9":
            digits_end += 1
        j = digits_end
        if j < n and text[j] == ":":
            j += 1
            while j < n and text[j].isspace():  # the regex's \s on str: str.isspace()
                j += 1
            if j < n and text[j] == "(":
                close = text.find(")", j + 1)
                if close < 0:
                    break
                found.append((i, digits_end, j + 1, close))
                i = close + 1
                continue
        i = digits_end
    return found


def keyframes_from_table(table: Mapping[int, float]) -> dict[int, float]:
    """Validate the structured form of key frames ({frame: value}) and return it as {int: float}.

    Keys must be non-negative integers (or canonical decimal strings such as ``"10"``, since JSON
    object keys are strings); values finite real numbers. Order is kept (see :func:`keyframe_series`).
    At least one key is required: DD crashes on an empty schedule.
    """
    if not table:
        raise ScheduleError("key-frame table is empty; give at least one frame")
    result: dict[int, float] = {}
    for key, value in table.items():
        if isinstance(key, str) and re.fullmatch(r"0|[1-9][0-9]*", key):
            key = int(key)
        frame = check_frame_key(key, "key-frame")
        if frame in result:
            raise ScheduleError(f"key-frame {frame} is given twice")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScheduleError(f"key-frame {frame} value {value!r} must be a number")
        number = float(value)
        if not math.isfinite(number):
            raise ScheduleError(f"key-frame {frame} value {value!r} must be finite")
        result[frame] = number
    return result


def _interpolate_gap(series: list[float | None], a: int, b: int) -> None:
    """Fill positions a+1..b-1 between known points a and b exactly as ``numpy.interp`` computes them.

    pandas' linear ``interpolate`` calls ``np.interp`` on the missing positions; copying its formula
    (slope first, then ``slope * (x - x_a) + y_a``, with its NaN fallbacks) keeps results bit-identical.
    """
    ya, yb = series[a], series[b]
    slope = (yb - ya) / (float(b) - float(a))
    for x in range(a + 1, b):
        value = slope * (float(x) - float(a)) + ya
        if math.isnan(value):
            value = slope * (float(x) - float(b)) + yb
            if math.isnan(value) and ya == yb:
                value = ya
        series[x] = value


def keyframe_series(keys: Mapping[int, float], max_frames: int) -> list[float]:
    """Per-frame values for frames 0..max_frames-1, linearly interpolated between key frames
    (disco.py:2094 (get_inbetweens)).

    DD (``get_inbetweens`` with ``interp_spline='Linear'``) does, on a pandas series indexed
    0..max_frames-1 and filled with NaN:

    1. ``s[k] = v`` for each key in dict order. A key >= max_frames is not in the index, so pandas
       *appends* it as a new label at the end, in insertion order (not sorted).
    2. ``s[0] = s[first_valid_index()]``: the smallest key < max_frames, or, if there is none, the
       first appended key in dict order.
    3. ``s[max_frames-1] = s[last_valid_index()]`` (positional order): the last appended key in dict
       order if any key is >= max_frames, else the greatest key. With max_frames == 1 this overwrites
       step 2.
    4. ``interpolate(method='linear')``: by *position*, ignoring labels. Because positions 0 and
       max_frames-1 are now known, entries 0..max_frames-1 depend only on the known points among
       them, so the appended labels never influence the frames DD reads beyond steps 2-3.

    So values are constant before the first key and after the last, and a ramp towards a key beyond
    the end is compressed so that frame max_frames-1 reaches that key's value.
    """
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
        raise ValueError(f"max_frames must be a positive integer, not {max_frames!r}")
    if not keys:
        raise ScheduleError("key-frame schedule is empty; give at least one frame")
    series: list[float | None] = [None] * max_frames
    appended: list[float] = []
    for key, raw in keys.items():
        frame = check_frame_key(key, "key-frame")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ScheduleError(f"key-frame {frame} value {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise ScheduleError(f"key-frame {frame} value {raw!r} must be finite")
        if frame < max_frames:
            series[frame] = value
        else:
            appended.append(value)  # dict order; a dict has each key once, so no re-assignment
    in_range = [v for v in series if v is not None]
    series[0] = in_range[0] if in_range else appended[0]
    if appended:
        series[max_frames - 1] = appended[-1]
    else:
        series[max_frames - 1] = next(v for v in reversed(series) if v is not None)
    known = [i for i, v in enumerate(series) if v is not None]
    for a, b in zip(known, known[1:]):
        if b - a > 1:
            _interpolate_gap(series, a, b)
    return series  # type: ignore[return-value]  # every entry is now a float

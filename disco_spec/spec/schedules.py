"""Disco Diffusion 5.2's string mini-languages: prompts, prompt schedules, key frames, cut schedules.

Everything here is a pure function of its arguments (standard library only, so importing this module
costs nothing). Each function mirrors one piece of DD 5.2's behaviour as described in
``dd52-behaviour.md`` §2.8, §2.13, §2.18, §3 and §6.9. Where DD's observable behaviour is a crash or
garbage, we raise :class:`ScheduleError` instead (each such place says so); everywhere else the result
is the one DD computes, including its floating-point rounding.

DD evaluates cut schedules with ``eval``; :func:`parse_cut_schedule` is a small hand-written
recursive-descent evaluator that accepts only list literals of numbers, ``*`` by integers, ``+`` and
parentheses, so a spec can never run code.
"""

import math
import re
from collections.abc import Mapping, Sequence

__all__ = [
    "CUT_SCHEDULE_LENGTH",
    "ScheduleError",
    "calc_frames_skip_steps",
    "cut_schedule_from_segments",
    "is_intermediate_step",
    "keyframe_series",
    "keyframes_from_table",
    "normalize_weights",
    "parse_cut_schedule",
    "parse_keyframes",
    "parse_percent",
    "parse_prompt",
    "prompts_for_frame",
    "schedule_index",
    "steps_per_checkpoint",
]

CUT_SCHEDULE_LENGTH = 1000
"""Cut schedules are indexed by ``1000 - (floor(t) + 1)`` (§3.4), so they need 1000 entries."""


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


# --------------------------------------------------------------------------------------------------
# §3.1 prompts and weights
# --------------------------------------------------------------------------------------------------


def _split_prompt(prompt: str) -> tuple[str, str | None]:
    """Split off DD's weight piece, exactly as DD's ``parse_prompt`` does (§3.1).

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
    """Return (text without the ``:weight`` suffix, weight) for a text or image prompt (§3.1).

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
    """Divide prompt weights by the absolute value of their sum, keeping signs (§3.1, quirk Q6).

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
# §3.2 prompt schedules
# --------------------------------------------------------------------------------------------------


def _check_frame_key(key: object, what: str) -> int:
    """Keys must be real non-negative ints; DD's pandas would silently mis-place anything else (§3.2)."""
    if isinstance(key, bool) or not isinstance(key, int):
        raise ScheduleError(f"{what} key {key!r} must be an integer frame number (convert string keys first)")
    if key < 0:
        raise ScheduleError(f"{what} key {key} must not be negative")
    return key


def prompts_for_frame(prompts: Mapping[int, Sequence[str]], frame: int) -> list[str]:
    """The prompt list in force at ``frame``: that of the greatest key <= frame, else the first key's (§3.2).

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
        _check_frame_key(key, "prompt schedule")
        if key <= frame and (best is None or key > best):
            best = key
    if best is None:
        best = min(prompts)
    chosen = prompts[best]
    if isinstance(chosen, str):
        raise ScheduleError(f"prompts for frame {best} must be a list of strings, not a single string")
    return list(chosen)


# --------------------------------------------------------------------------------------------------
# §3.3 key frames
# --------------------------------------------------------------------------------------------------

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
    """Parse a DD key-frame string such as ``"0: (1), 10: (1.05)"`` into {frame: value} (§3.3).

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
    matches = list(_KEYFRAME.finditer(source))
    if not matches:
        source, offset = _WRAP_PREFIX + text + ")", -len(_WRAP_PREFIX)
        matches = list(_KEYFRAME.finditer(source))
    frames: dict[int, float] = {}
    for match in matches:
        frame_pos = max(match.start(1) + offset, 0)
        try:
            frame = int(match.group(1))
        except ValueError:  # more digits than int() accepts
            raise ScheduleError("key-frame number is too long", frame_pos) from None
        frames[frame] = _keyframe_value(match.group(2), match.start(2) + offset)
    return frames


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
        frame = _check_frame_key(key, "key-frame")
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
    """Per-frame values for frames 0..max_frames-1, linearly interpolated between key frames (§3.3).

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
        frame = _check_frame_key(key, "key-frame")
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


# --------------------------------------------------------------------------------------------------
# §2.13 / §3.4 cut schedules
# --------------------------------------------------------------------------------------------------

_MAX_NESTING = 100  # brackets/parentheses; Python's own parser stops at 200
_SATURATED = 10**15  # list lengths at or above this are "absurd" and tracked only as "at least this"

# A Python decimal int or float literal (no imaginary, hex, octal or binary forms).
_DIGITS = r"[0-9](?:_?[0-9])*"
_NUMBER = re.compile(rf"(?:(?:{_DIGITS})?\.{_DIGITS}|{_DIGITS}\.?)(?:[eE][+-]?{_DIGITS})?")
_AFTER_NUMBER = re.compile(r"[A-Za-z0-9_.]")
_PUNCTUATION = "[](),+-*"
_WHITESPACE = " \t\n\r\f\v"


def _tokenize(text: str) -> list[tuple[str, object, int]]:
    """Split a cut-schedule string into (kind, value, position) tokens; kinds: num, punctuation, end."""
    tokens: list[tuple[str, object, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
        elif ch in _PUNCTUATION:
            tokens.append((ch, None, i))
            i += 1
        elif ch.isascii() and (ch.isdigit() or ch == "."):
            match = _NUMBER.match(text, i)
            if match is None:
                raise ScheduleError(f"unexpected character {ch!r}", i)
            end = match.end()
            if end < n and _AFTER_NUMBER.match(text, end):
                raise ScheduleError(f"malformed number {text[i:end + 1]!r}", i)
            tokens.append(("num", _number_value(match.group(), i), i))
            i = end
        else:
            raise ScheduleError(f"unexpected character {ch!r}", i)
    tokens.append(("end", None, n))
    return tokens


def _number_value(literal: str, position: int) -> int | float:
    """Value of a Python decimal literal: int unless it has a point or an exponent (as ``eval`` gives)."""
    if "." in literal or "e" in literal or "E" in literal:
        return float(literal)
    if literal[0] == "0" and literal.strip("0_"):  # "012": Python forbids leading zeros here
        raise ScheduleError(f"leading zeros are not allowed in integer {literal!r}", position)
    try:
        return int(literal)
    except ValueError:  # beyond Python's int/str conversion limit, as eval would also refuse
        raise ScheduleError("integer literal is too long", position) from None


# A lazily built list: ("lit", values) | ("cat", parts) | ("rep", part, times). Building lazily with a
# saturating length lets "[1]*1000000000000" fail on its length without allocating anything.
class _Seq:
    __slots__ = ("length", "node", "position")

    def __init__(self, length: int, node: tuple, position: int):
        self.length = length
        self.node = node
        self.position = position


class _Num:
    __slots__ = ("value", "position")

    def __init__(self, value: int | float, position: int):
        self.value = value
        self.position = position


class _Parser:
    """Recursive descent over the token list. Grammar (Python precedence, a safe subset):

        expr   := term ('+' term)*
        term   := unary ('*' unary)*
        unary  := ('+' | '-')* atom
        atom   := NUMBER | '[' [item (',' item)* [',']] ']' | '(' expr ')'
        item   := ('+' | '-')* NUMBER
    """

    def __init__(self, tokens: list[tuple[str, object, int]]):
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self) -> tuple[str, object, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, object, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: str) -> tuple[str, object, int]:
        token = self.peek()
        if token[0] != kind:
            raise ScheduleError(f"expected {kind!r}, found {_describe(token)}", token[2])
        return self.take()

    def open_bracket(self, position: int) -> None:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise ScheduleError(f"brackets nested more than {_MAX_NESTING} deep", position)

    def expr(self) -> "_Seq | _Num":
        left = self.term()
        while self.peek()[0] == "+":
            self.take()
            right = self.term()
            left = _concatenate(left, right)
        return left

    def term(self) -> "_Seq | _Num":
        left = self.unary()
        while self.peek()[0] == "*":
            operator = self.take()
            right = self.unary()
            left = _repeat(left, right, operator[2])
        return left

    def unary(self) -> "_Seq | _Num":
        negate, start = False, self.peek()[2]
        while self.peek()[0] in "+-":
            negate ^= self.take()[0] == "-"
        operand = self.atom()
        if start == operand.position:
            return operand
        if isinstance(operand, _Seq):
            raise ScheduleError("a sign cannot be applied to a list", start)
        return _Num(-operand.value if negate else +operand.value, start)

    def atom(self) -> "_Seq | _Num":
        kind, value, position = self.peek()
        if kind == "num":
            self.take()
            return _Num(value, position)  # type: ignore[arg-type]
        if kind == "[":
            return self.list_literal()
        if kind == "(":
            self.take()
            self.open_bracket(position)
            inner = self.expr()
            self.expect(")")
            self.depth -= 1
            if isinstance(inner, _Seq):
                return _Seq(inner.length, inner.node, position)
            return _Num(inner.value, position)
        raise ScheduleError(f"expected a number, '[' or '(', found {_describe(self.peek())}", position)

    def list_literal(self) -> _Seq:
        start = self.take()[2]
        self.open_bracket(start)
        values: list[int | float] = []
        while self.peek()[0] != "]":
            values.append(self.item())
            if self.peek()[0] == ",":
                self.take()
            elif self.peek()[0] != "]":
                raise ScheduleError(f"expected ',' or ']', found {_describe(self.peek())}", self.peek()[2])
        self.take()
        self.depth -= 1
        return _Seq(len(values), ("lit", values), start)

    def item(self) -> int | float:
        negate = False
        while self.peek()[0] in "+-":
            negate ^= self.take()[0] == "-"
        kind, value, position = self.peek()
        if kind != "num":
            raise ScheduleError(f"expected a number in the list, found {_describe(self.peek())}", position)
        self.take()
        return -value if negate else +value  # type: ignore[operator]


def _describe(token: tuple[str, object, int]) -> str:
    """How a token is named in error messages."""
    if token[0] == "end":
        return "end of text"
    if token[0] == "num":
        return f"number {token[1]!r}"
    return repr(token[0])


def _concatenate(left: "_Seq | _Num", right: "_Seq | _Num") -> _Seq:
    """``list + list``; a number on either side is an error, as in Python."""
    for operand in (left, right):
        if not isinstance(operand, _Seq):
            raise ScheduleError(f"expected a list, found the number {operand.value!r}", operand.position)
    # Flatten left-nested sums so "a+b+c+..." stays one level deep. Appending in place is safe: a
    # node belongs to exactly one value while parsing, and that value is being replaced.
    parts = left.node[1] if left.node[0] == "cat" else [left.node]
    parts.append(right.node)
    return _Seq(min(left.length + right.length, _SATURATED), ("cat", parts), left.position)


def _repeat(left: "_Seq | _Num", right: "_Seq | _Num", operator_position: int) -> _Seq:
    """``list * n`` or ``n * list`` with an integer n >= 0.

    Python would also accept ``int * int`` and negative counts (giving ``[]``); both are almost
    certainly mistakes in a schedule, so they are errors here.
    """
    if isinstance(left, _Seq) and isinstance(right, _Seq):
        raise ScheduleError("cannot multiply a list by a list", operator_position)
    if isinstance(left, _Num) and isinstance(right, _Num):
        raise ScheduleError("expected a list on one side of '*'", operator_position)
    sequence, count = (left, right) if isinstance(left, _Seq) else (right, left)
    times = count.value
    if not isinstance(times, int):
        raise ScheduleError(f"a list can only be multiplied by an integer, not {times!r}", count.position)
    if times < 0:
        raise ScheduleError(f"a list cannot be multiplied by a negative number ({times})", count.position)
    times = min(times, _SATURATED)  # a count this large can only ever be cancelled by "*0"
    if sequence.length == 0 or times == 0:
        length = 0
    else:
        length = min(sequence.length * times, _SATURATED)
    node = sequence.node
    if node[0] == "rep":  # (x*a)*b == x*(a*b): keeps "[1]*1*1*...*1" one level deep
        node, times = node[1], min(node[2] * times, _SATURATED)
    return _Seq(length, ("rep", node, times), left.position)


def _materialise(node: tuple, out: list) -> None:
    """Append a lazily built list's entries to ``out`` (only called once its length is known to be 1000)."""
    kind = node[0]
    if kind == "lit":
        out.extend(node[1])
    elif kind == "cat":
        for part in node[1]:
            _materialise(part, out)
    else:
        times = node[2]
        if times:
            once: list = []
            _materialise(node[1], once)
            if once:
                out.extend(once * times)


def parse_cut_schedule(text: str) -> list[float]:
    """Evaluate a DD cut schedule such as ``"[12]*400+[4]*600"`` safely; the result has 1000 entries.

    Accepts list literals of numbers (Python decimal literals, signs allowed, trailing comma allowed),
    ``list * int`` / ``int * list``, ``+`` concatenation and parentheses, with Python's precedence.
    Numbers keep their Python type (``12`` stays an int, as DD's ``eval`` gives) so counts can be used
    as counts. Differences from DD's ``eval``: no other Python syntax; ``int * int``, negative counts
    and non-list results are errors; and the list must have exactly 1000 entries (DD only indexes the
    first 1000 and would silently ignore the rest). Every syntax error carries its character position.
    """
    if not isinstance(text, str):
        raise TypeError(f"a cut schedule must be a string, not {type(text).__name__}")
    parser = _Parser(_tokenize(text))
    result = parser.expr()
    trailing = parser.peek()
    if trailing[0] != "end":
        raise ScheduleError(f"expected '+', '*' or end of text, found {_describe(trailing)}", trailing[2])
    if not isinstance(result, _Seq):
        raise ScheduleError(f"expected a list, found the number {result.value!r}", result.position)
    if result.length != CUT_SCHEDULE_LENGTH:
        count = f"at least {_SATURATED}" if result.length >= _SATURATED else str(result.length)
        raise ScheduleError(f"cut schedule has {count} entries; it must have exactly {CUT_SCHEDULE_LENGTH}")
    values: list = []
    _materialise(result.node, values)
    return values


def cut_schedule_from_segments(segments: Sequence[tuple[float, int]]) -> list[float]:
    """Build a cut schedule from [(value, units), ...]: ``[value]*units`` concatenated (§2.13).

    The structured twin of ``"[12]*400+[4]*600"`` == ``[(12, 400), (4, 600)]``. Units must be integers
    >= 1 totalling exactly 1000 (checked before anything is built); values must be finite numbers and
    keep their type.
    """
    checked: list[tuple[int | float, int]] = []
    total = 0
    for i, segment in enumerate(segments):
        try:
            value, units = segment
        except (TypeError, ValueError):
            raise ScheduleError(f"segment #{i} must be a (value, units) pair, not {segment!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ScheduleError(f"segment #{i} value {value!r} must be a finite number")
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ScheduleError(f"segment #{i} units {units!r} must be an integer >= 1")
        total += units
        checked.append((value, units))
    if total != CUT_SCHEDULE_LENGTH:
        raise ScheduleError(f"cut schedule segments total {total} units; they must total exactly {CUT_SCHEDULE_LENGTH}")
    values: list = []
    for value, units in checked:
        values.extend([value] * units)
    return values


# --------------------------------------------------------------------------------------------------
# §2.8 / §2.18 / §3.4 / §6.9 derived step numbers
# --------------------------------------------------------------------------------------------------


def parse_percent(text: str | int) -> int:
    """``frames_skip_steps`` as an integer percentage 0..100: ``"60%"``, ``"60"`` and ``60`` give 60.

    DD does ``int(text.rstrip('%'))`` (§3.5), so decimals such as ``"60.5%"`` fail, and so do they here.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise TypeError(f"frames_skip_steps must be a string like '60%' or an int, not {type(text).__name__}")
    if isinstance(text, int):
        value = text
    else:
        try:
            value = int(text.rstrip("%"))
        except ValueError:
            raise ScheduleError(f"frames_skip_steps {text!r} is not a whole percentage like '60%'", 0) from None
    if not 0 <= value <= 100:
        raise ScheduleError(f"frames_skip_steps {text!r} must be between 0% and 100%")
    return value


def calc_frames_skip_steps(steps: int, percent: int) -> int:
    """Steps skipped for frames initialised from the previous frame: DD's ``floor(steps * (percent/100))``.

    This is DD's float formula on purpose, not the exact integer ``steps * percent // 100``: the two
    differ for some inputs (``steps=90, '70%'``: 0.7 * 90 = 62.99999999999999, so DD skips 62, not 63;
    likewise ``100, '29%'`` -> 28), and reproducing DD means skipping what DD skips.
    """
    return math.floor(steps * (percent / 100))


def schedule_index(t: float) -> int:
    """Cut-schedule index for the guidance timestep ``t`` (0..1000 scale): ``1000 - (floor(t) + 1)`` (§3.4).

    Pass ``t`` exactly as DD computes it (``tau_k * (1000 / N)`` rounded to float32 by torch): the
    floor is sensitive to the last bit when N != 1000. DD truncates with ``int()``; for the t >= 0 DD
    ever produces that equals ``floor``. An index outside 0..999 (DD would index out of range or wrap
    around) raises ValueError.
    """
    try:
        whole = math.floor(float(t))
    except (ValueError, OverflowError):
        raise ValueError(f"timestep {t!r} is not finite") from None
    index = CUT_SCHEDULE_LENGTH - (whole + 1)
    if not 0 <= index < CUT_SCHEDULE_LENGTH:
        raise ValueError(f"timestep {t!r} gives cut-schedule index {index}, outside 0..{CUT_SCHEDULE_LENGTH - 1}")
    return index


def steps_per_checkpoint(steps: int, skip_steps: int, intermediate_saves: int | Sequence[int]) -> int | None:
    """DD's spacing of intermediate saves (§2.18): int n>0 -> ``max(1, (steps-skip_steps-1)//(n+1))``.

    ``0`` gives ``steps + 10`` (a spacing no loop index reaches, so nothing is saved); a list gives None
    (save at the listed loop indices instead). DD uses the still-image ``skip_steps`` even for animation
    frames that skip more. ``True`` counts as 1, as in DD; negative counts are rejected (DD would divide
    by zero for -1).
    """
    if isinstance(intermediate_saves, (str, bytes)):
        raise TypeError("intermediate_saves must be an int or a list of ints, not a string")
    if isinstance(intermediate_saves, int):
        count = int(intermediate_saves)
        if count < 0:
            raise ValueError(f"intermediate_saves must not be negative, got {count}")
        if count == 0:
            return steps + 10
        return max(1, (steps - skip_steps - 1) // (count + 1))
    if isinstance(intermediate_saves, Sequence):
        return None
    raise TypeError(f"intermediate_saves must be an int or a list of ints, not {type(intermediate_saves).__name__}")


def is_intermediate_step(j: int, steps_per_ckpt: int | None, intermediate_saves) -> bool:
    """Whether loop iteration ``j`` saves an intermediate image (§6.9), as DD decides it.

    With a spacing (integer mode): ``j > 0 and j % steps_per_ckpt == 0``; with None (list mode):
    ``j in intermediate_saves``.
    """
    if steps_per_ckpt is not None:
        return j > 0 and j % steps_per_ckpt == 0
    if isinstance(intermediate_saves, (str, bytes)) or not isinstance(intermediate_saves, Sequence):
        raise TypeError("with no checkpoint spacing, intermediate_saves must be a list of loop indices")
    return j in intermediate_saves

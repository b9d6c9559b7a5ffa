"""Disco Diffusion 5.2's cut schedules (disco.py:2532-2535 (DoTheRun cell),
disco.py:1260-1262 (cond_fn)): evaluating and indexing them.

DD evaluates cut schedules such as ``"[12]*400+[4]*600"`` with ``eval``; :func:`parse_cut_schedule` is
a small hand-written tokenizer and recursive-descent evaluator that accepts only list literals of
numbers, ``*`` by integers, ``+`` and parentheses, so a spec can never run code. Also here: the
structured form (:func:`cut_schedule_from_segments`) and the index a guidance timestep reads
(:func:`schedule_index`). Pure functions, standard library only; import them from
:mod:`disco_spec.spec.schedules`.
"""

import math
import re
from collections.abc import Sequence

from .schedule_error import ScheduleError

__all__ = ["CUT_SCHEDULE_LENGTH", "cut_schedule_from_segments", "parse_cut_schedule", "schedule_index"]

CUT_SCHEDULE_LENGTH = 1000
"""Cut schedules are indexed by ``1000 - (floor(t) + 1)`` (disco.py:1253-1262 (cond_fn)), so they need 1000 entries."""

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
    """Build a cut schedule from [(value, units), ...]: ``[value]*units`` concatenated
    (disco.py:2356 (ExtraSettings cell)).

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


def schedule_index(t: float) -> int:
    """Cut-schedule index for the guidance timestep ``t`` (0..1000 scale): ``1000 - (floor(t) + 1)``
    (disco.py:1253-1262 (cond_fn)).

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

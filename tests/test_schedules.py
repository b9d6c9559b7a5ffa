"""Tests for disco_spec.spec.schedules: DD 5.2's prompt, key-frame and cut-schedule mini-languages.

Known cases come from DD 5.2's disco.py (the places spec/schedules.py cites); property tests compare
against small independent implementations (and, for cut schedules, Python's own eval as an oracle on
generated strings that are known to be safe).
"""

import math
import pickle

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from disco_spec.spec.schedules import (
    ScheduleError,
    calc_frames_skip_steps,
    cut_schedule_from_segments,
    is_intermediate_step,
    keyframe_series,
    keyframes_from_table,
    normalize_weights,
    parse_cut_schedule,
    parse_keyframes,
    parse_percent,
    parse_prompt,
    prompts_for_frame,
    schedule_index,
    steps_per_checkpoint,
)

FAST = settings(max_examples=200, deadline=None)


# ---------------------------------------------------------------------------------------------
# ScheduleError
# ---------------------------------------------------------------------------------------------


def test_schedule_error_message_includes_position():
    err = ScheduleError("expected ')'", 12)
    assert str(err) == "expected ')' at character 12"
    assert err.position == 12
    assert isinstance(err, ValueError)
    assert ScheduleError("no position").position is None
    assert str(ScheduleError("no position")) == "no position"


def test_schedule_error_pickles_with_position():
    err = pickle.loads(pickle.dumps(ScheduleError("bad", 3)))
    assert (err.position, str(err)) == (3, "bad at character 3")


# ---------------------------------------------------------------------------------------------
# prompts and weights: disco.py:783 (parse_prompt), disco.py:1205-1207 (do_run)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("rocky beach:2", ("rocky beach", 2.0)),
        ("sky:-1", ("sky", -1.0)),
        ("plain prompt", ("plain prompt", 1.0)),
        ("x: 2 ", ("x", 2.0)),  # float() allows surrounding spaces
        ("x:1e3", ("x", 1000.0)),
        ("a:b:3", ("a:b", 3.0)),  # only the last colon splits
        ("", ("", 1.0)),
        ("https://example.com/img.png", ("https://example.com/img.png", 1.0)),
        ("https://example.com/img.png:2", ("https://example.com/img.png", 2.0)),
        ("http://example.com/img.png:-0.5", ("http://example.com/img.png", -0.5)),
        ("http://host:8080/img.png:2", ("http://host:8080/img.png", 2.0)),
    ],
)
def test_parse_prompt_known_cases(prompt, expected):
    assert parse_prompt(prompt) == expected


@pytest.mark.parametrize(
    "prompt, position",
    [
        ("a: b", 2),  # the DD example: " b" is not a number
        ("C:\\img.png", 2),  # Windows paths fail in DD too
        ("trailing colon:", 15),
        ("https://example.com:8080/img.png", 20),  # port without weight: "8080/img.png" is the weight piece
    ],
)
def test_parse_prompt_bad_weight_reports_piece_and_position(prompt, position):
    with pytest.raises(ScheduleError) as info:
        parse_prompt(prompt)
    assert info.value.position == position
    assert repr(prompt[position:]) in str(info.value)
    assert f"at character {position}" in str(info.value)


def test_dd_weights_example():
    weights = [parse_prompt(p)[1] for p in ["rocky beach:2", "sky:-1"]]
    assert weights == [2.0, -1.0]
    assert normalize_weights(weights) == [2.0, -1.0]  # sum 1
    assert normalize_weights([-2.0, 1.0]) == [-2.0, 1.0]  # sum -1, divided by |sum|: signs kept
    assert normalize_weights([1.0, 3.0]) == [0.25, 0.75]


@pytest.mark.parametrize("weights", [[1.0, -1.0], [0.0], [], [0.0005, 0.0004], [2.0, -1.9995]])
def test_weights_must_not_sum_to_zero(weights):
    with pytest.raises(ScheduleError, match="must not sum to 0"):
        normalize_weights(weights)


def test_non_finite_weights_are_rejected():
    with pytest.raises(ScheduleError):
        normalize_weights([1.0, math.inf])
    with pytest.raises(ScheduleError):
        normalize_weights([math.nan])


@FAST
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=20))
def test_normalize_weights_sum_has_absolute_value_one(weights):
    assume(abs(math.fsum(weights)) >= 1e-3)
    result = normalize_weights(weights)
    assert len(result) == len(weights)
    assert abs(math.fsum(result)) == pytest.approx(1.0, rel=1e-9)
    assert all((r > 0) == (w > 0) and (r < 0) == (w < 0) for r, w in zip(result, weights))


@FAST
@given(
    st.text().filter(lambda s: ":" not in s),
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(10**6), max_value=10**6),
    ),
)
def test_parse_prompt_round_trips_text_and_weight(text, weight):
    assert parse_prompt(f"{text}:{weight}") == (text, float(weight))
    assert parse_prompt(text) == (text, 1.0)


@FAST
@given(st.lists(st.sampled_from(list("ab :.-+e0123456789 \t") + ["http://", "https://", "inf", "nan"])).map("".join))
def test_parse_prompt_garbage_parses_or_raises_schedule_error(text):
    try:
        parse_prompt(text)
    except ScheduleError as err:
        assert err.position is not None and 0 <= err.position <= len(text)


# ---------------------------------------------------------------------------------------------
# prompt schedules: disco.py:2158 (split_prompts), disco.py:1151-1156 (do_run)
# ---------------------------------------------------------------------------------------------


def test_prompts_for_frame_forward_and_back_fill():
    prompts = {10: ["a"], 100: ["b", "c:5"]}
    assert prompts_for_frame(prompts, 0) == ["a"]  # before the first key: back-filled
    assert prompts_for_frame(prompts, 10) == ["a"]
    assert prompts_for_frame(prompts, 99) == ["a"]
    assert prompts_for_frame(prompts, 100) == ["b", "c:5"]
    assert prompts_for_frame(prompts, 9999) == ["b", "c:5"]
    assert prompts_for_frame({}, 3) == []


def test_prompts_for_frame_returns_a_copy():
    prompts = {0: ["a"]}
    prompts_for_frame(prompts, 0).append("b")
    assert prompts == {0: ["a"]}


@pytest.mark.parametrize("bad", [{"0": ["a"]}, {-1: ["a"]}, {0: "a string"}])
def test_prompts_for_frame_rejects_keys_dd_would_misplace(bad):
    with pytest.raises(ScheduleError):
        prompts_for_frame(bad, 0)


@FAST
@given(
    st.dictionaries(st.integers(0, 60), st.lists(st.text(max_size=3), max_size=3), min_size=1, max_size=6),
    st.integers(1, 60),
)
def test_prompts_for_frame_matches_fill_of_a_series(prompts, max_frames):
    # DD's split_prompts, written out: a series of max_frames slots, forward-fill then back-fill.
    series = [prompts.get(f) for f in range(max_frames)]
    extra = [prompts[k] for k in sorted(prompts) if k >= max_frames]
    for f in range(1, max_frames):
        if series[f] is None:
            series[f] = series[f - 1]
    nxt = extra[0] if extra else None
    for f in reversed(range(max_frames)):
        if series[f] is None:
            series[f] = nxt
        nxt = series[f]
    for frame in range(max_frames):
        assert prompts_for_frame(prompts, frame) == series[frame]


# ---------------------------------------------------------------------------------------------
# key frames: disco.py:2049 (parse_key_frames), disco.py:2094 (get_inbetweens)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0: (1.04), 10: (1.1)", {0: 1.04, 10: 1.1}),
        ("5: (2), 10: (4)", {5: 2.0, 10: 4.0}),
        ("0:(0)", {0: 0.0}),
        ("0: (1), 10: (1.05)", {0: 1.0, 10: 1.05}),
        ("0:( -0.5 ),3:\n(1e2) junk 7:(+2)", {0: -0.5, 3: 100.0, 7: 2.0}),
        ("1.05", {0: 1.05}),  # no match: DD retries as "0: (1.05)"
        ("-3", {0: -3.0}),
        ("0: (1), 0: (2)", {0: 2.0}),  # later duplicate wins
        ("-5: (1)", {5: 1.0}),  # DD's pattern ignores the '-' and reads frame 5
    ],
)
def test_parse_keyframes_known_cases(text, expected):
    assert parse_keyframes(text) == expected


@pytest.mark.parametrize(
    "text, position",
    [
        ("0: (1), 10: (abc)", 13),
        ("0: (1+2)", 4),  # expressions are not supported in DD
        ("abc", 0),  # wrapped as "0: (abc)"; the position refers to the original text
        ("  ", 0),
        ("", 0),
        ("0: (inf)", 4),
    ],
)
def test_parse_keyframes_errors_have_positions(text, position):
    with pytest.raises(ScheduleError) as info:
        parse_keyframes(text)
    assert info.value.position == position


def test_keyframe_series_doc_examples():
    s = keyframe_series(parse_keyframes("0: (1.04), 10: (1.1)"), 100)
    assert s[0] == 1.04
    assert s[5] == pytest.approx(1.07)
    assert s[10:] == [1.1] * 90
    s = keyframe_series(parse_keyframes("5: (2), 10: (4)"), 50)
    assert s[:6] == [2.0] * 6
    assert s[7] == pytest.approx(2.8)
    assert s[10:] == [4.0] * 40
    assert keyframe_series(parse_keyframes("1.05"), 7) == [1.05] * 7


def test_keyframe_series_key_beyond_max_frames_compresses_the_ramp():
    # pandas appends key 20 after label 9; frame 9 then takes its value and the ramp ends there.
    assert keyframe_series({0: 0.0, 20: 9.0}, 10) == [float(i) for i in range(10)]
    # With several keys beyond the end, pandas uses dict (insertion) order, not the sorted order:
    # frame 0 <- first appended key (20 -> 5), frame 9 <- last appended key (15 -> 1).
    s = keyframe_series({20: 5.0, 15: 1.0}, 10)
    assert (s[0], s[9]) == (5.0, 1.0)
    assert s[4] == pytest.approx(5.0 - 4 * 4.0 / 9)
    # An in-range key keeps frame 0; frame 9 still takes the last appended value.
    s = keyframe_series({3: 2.0, 20: 5.0, 15: 1.0}, 10)
    assert s[:4] == [2.0] * 4 and s[9] == 1.0
    # max_frames == 1: frame 0 is first set to the first value, then overwritten by the last.
    assert keyframe_series({0: 1.0, 3: 4.0}, 1) == [4.0]


def test_keyframe_series_matches_pandas_bit_for_bit_on_recorded_cases():
    # Recorded with pandas 1.5.3 (DD's get_inbetweens, interp_spline='Linear').
    assert keyframe_series({20: 5.0, 15: 1.0}, 10) == [
        5.0, 4.555555555555555, 4.111111111111111, 3.666666666666667, 3.2222222222222223,
        2.7777777777777777, 2.3333333333333335, 1.8888888888888893, 1.4444444444444446, 1.0,
    ]  # fmt: skip
    assert keyframe_series({9: 1.0, 3: 2.0}, 10) == [
        2.0, 2.0, 2.0, 2.0, 1.8333333333333333, 1.6666666666666667, 1.5, 1.3333333333333335,
        1.1666666666666667, 1.0,
    ]  # fmt: skip


@pytest.mark.parametrize("keys, max_frames", [({}, 10), ({-1: 1.0}, 10), ({0: math.nan}, 10), ({0: 1.0}, 0)])
def test_keyframe_series_rejects_bad_input(keys, max_frames):
    with pytest.raises(ValueError):
        keyframe_series(keys, max_frames)


def _reference_series(keys: dict[int, float], max_frames: int) -> list[float]:
    """Straightforward piecewise-linear evaluation, for keys all below max_frames."""
    ks = sorted(keys)
    out = []
    for f in range(max_frames):
        if f <= ks[0]:
            out.append(keys[ks[0]])
        elif f >= ks[-1]:
            out.append(keys[ks[-1]])
        else:
            b = next(k for k in ks if k >= f)
            a = max(k for k in ks if k <= f)
            out.append(keys[a] if a == b else keys[a] + (keys[b] - keys[a]) * (f - a) / (b - a))
    return out


keyframe_tables = st.integers(1, 80).flatmap(
    lambda n: st.tuples(
        st.dictionaries(
            st.integers(0, n - 1), st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=1, max_size=8
        ),
        st.just(n),
    )
)


@FAST
@given(keyframe_tables)
def test_keyframe_series_is_piecewise_linear_and_clamped(table_and_n):
    keys, n = table_and_n
    s = keyframe_series(keys, n)
    assert len(s) == n
    first, last = min(keys), max(keys)
    assert all(v == keys[first] for v in s[: first + 1])  # constant before the first key
    assert all(v == keys[last] for v in s[last:])  # constant after the last key
    for k, v in keys.items():
        assert s[k] == v  # exactly the key value at each key
    assert s == pytest.approx(_reference_series(keys, n), rel=1e-9, abs=1e-9)


@FAST
@given(keyframe_tables, st.sampled_from([", ", ",", " ", ",\n", " ; "]), st.sampled_from(["", " ", "\t"]))
def test_parse_keyframes_round_trips_written_tables(table_and_n, sep, space):
    keys, _ = table_and_n
    text = sep.join(f"{k}:{space}({space}{v!r}{space})" for k, v in keys.items())
    assert parse_keyframes(text) == keys


@FAST
@given(st.text(alphabet=st.sampled_from(list("0123456789:() ,.-+eE_\n\tabn"))) | st.text())
def test_parse_keyframes_garbage_parses_or_raises_schedule_error(text):
    try:
        result = parse_keyframes(text)
    except ScheduleError as err:
        assert err.position is not None and 0 <= err.position <= len(text)
    else:
        assert result and all(isinstance(k, int) and k >= 0 for k in result)
        assert all(math.isfinite(v) for v in result.values())


def test_keyframes_from_table():
    assert keyframes_from_table({0: 1, 10: 1.05}) == {0: 1.0, 10: 1.05}
    assert keyframes_from_table({"0": 1, "10": 2.5}) == {0: 1.0, 10: 2.5}
    assert list(keyframes_from_table({10: 1, 0: 2})) == [10, 0]  # order kept (it matters beyond max_frames)
    for bad in [{}, {-1: 1.0}, {0: math.inf}, {0: math.nan}, {0: "1"}, {0: True}, {"01": 1.0}, {1.5: 1.0}, {0: 1, "0": 2}]:
        with pytest.raises(ScheduleError):
            keyframes_from_table(bad)


# ---------------------------------------------------------------------------------------------
# cut schedules: disco.py:2356-2359 (ExtraSettings cell), disco.py:1260-1262 (cond_fn)
# ---------------------------------------------------------------------------------------------


def test_default_cut_schedules():
    overview = parse_cut_schedule("[12]*400+[4]*600")
    assert overview == [12] * 400 + [4] * 600
    assert all(type(x) is int for x in overview)  # counts stay ints, as DD's eval gives
    assert parse_cut_schedule("[4]*400+[12]*600") == [4] * 400 + [12] * 600
    gray = parse_cut_schedule("[0.2]*400+[0]*600")
    assert gray[:400] == [0.2] * 400 and gray[400:] == [0] * 600


@pytest.mark.parametrize(
    "text, expected",
    [
        ("400*[12]+600*[4]", [12] * 400 + [4] * 600),
        ("([1,2,]*250+[3]*500)", [1, 2] * 250 + [3] * 500),
        ("[1]+[2]*998+[3]", [1] + [2] * 998 + [3]),  # * binds tighter than +
        ("[-1.5e0, +2]*500", [-1.5, 2] * 500),
        ("[1]*10*100", [1] * 1000),
        ("[1]*(1000)", [1] * 1000),
        ("[5]*+1000", [5] * 1000),
        ("[9]*1000+[8]*0+[]*7+([7]*100000)*0", [9] * 1000),
        (" [ 1 ] \n* 1_000 ", [1] * 1000),
    ],
)
def test_cut_schedule_forms(text, expected):
    assert parse_cut_schedule(text) == expected


@pytest.mark.parametrize(
    "text, position, fragment",
    [
        ("[12]*400+[4]*600)", 16, "expected '+', '*' or end"),
        ("([12]*400+[4]*600", 17, "expected ')'"),
        ("[12]*400.0+[4]*600", 5, "integer"),
        ("[12]*-400+[4]*600", 5, "negative"),
        ("2*500*[1]", 1, "expected a list"),
        ("[1]*999+1", 8, "expected a list"),
        ("[1]*[2]", 3, "list by a list"),
        ("[1,,2]", 3, "expected a number"),
        ("[1]*1000 + x", 11, "unexpected character 'x'"),
        ("[1]*1e3", 4, "integer"),
        ("[01]*1000", 1, "leading zeros"),
        ("[1]*1000j", 4, "malformed number"),
        ("-[1]*1000", 0, "sign"),
        ("", 0, "expected a number"),
        ("1000", 0, "expected a list"),
        ("[1]*__import__('os')", 4, "unexpected character '_'"),
    ],
)
def test_cut_schedule_syntax_errors_have_positions(text, position, fragment):
    with pytest.raises(ScheduleError) as info:
        parse_cut_schedule(text)
    assert info.value.position == position
    assert fragment in str(info.value)
    assert f"at character {position}" in str(info.value)


@pytest.mark.parametrize("text, count", [("[1]*999", "999"), ("[1]*1001", "1001"), ("[]", "0")])
def test_cut_schedule_must_have_exactly_1000_entries(text, count):
    with pytest.raises(ScheduleError, match=rf"has {count} entries"):
        parse_cut_schedule(text)


def test_absurd_sizes_fail_without_building_the_list():
    with pytest.raises(ScheduleError, match="has 1000000000000 entries"):
        parse_cut_schedule("[1]*1000000000000")
    with pytest.raises(ScheduleError, match="at least"):
        parse_cut_schedule("[1]*" + "9" * 400)
    with pytest.raises(ScheduleError, match="at least"):
        parse_cut_schedule("([1]*100000*100000)*100000*100000+[2]")
    # huge intermediate lists cancelled by *0 still evaluate, as Python would
    assert parse_cut_schedule("[1]*" + "9" * 400 + "*0+[2]*1000") == [2] * 1000


def test_deep_nesting_is_a_schedule_error_not_a_recursion_error():
    with pytest.raises(ScheduleError, match="nested"):
        parse_cut_schedule("(" * 5000 + "[1]*1000" + ")" * 5000)
    assert parse_cut_schedule("[1]" + "*1" * 5000 + "*1000") == [1] * 1000
    assert parse_cut_schedule("+".join(["[1]"] * 1000)) == [1] * 1000


# Generators for valid expressions. Each yields (text, level): 2 = atom, 1 = product, 0 = sum, so
# operands are parenthesised only where Python's precedence needs it; an int is never multiplied by
# an int (which this evaluator rejects on purpose), so Python's eval is an exact oracle.
_ws = st.sampled_from(["", "", " ", "  "])
_int_literal = st.integers(0, 10**6).map(str) | st.sampled_from(["0", "00", "1_000", "0_0", "7"])
_float_literal = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False).map(repr) | st.sampled_from(
    ["1.", ".5", "1e3", "1.5E-2", "0.0", "2.e1", "1_0.5", "007.5", "0e0"]
)
_item = st.tuples(st.sampled_from(["", "-", "+", "- ", "--"]), _int_literal | _float_literal).map("".join)


@st.composite
def _literal(draw):
    items = draw(st.lists(_item, max_size=4))
    trailing = "," if items and draw(st.booleans()) else ""
    sep = draw(st.sampled_from([",", ", ", " , "]))
    return ("[" + draw(_ws) + sep.join(items) + trailing + draw(_ws) + "]", 2)


def _count():
    n = st.integers(0, 12)
    return n.map(str) | n.map(lambda k: f"({k})") | n.map(lambda k: f"+{k}") | st.just("-0")


def _extend(children):
    def repeat(args):
        (text, level), count, count_first, ws = args
        if count_first:
            operand = text if level == 2 else f"({text})"
            return (f"{count}{ws}*{ws}{operand}", 1)
        operand = text if level >= 1 else f"({text})"
        return (f"{operand}{ws}*{ws}{count}", 1)

    def concat(args):
        (a, _), (b, _), ws = args
        return (f"{a}{ws}+{ws}{b}", 0)

    return (
        st.tuples(children, _count(), st.booleans(), _ws).map(repeat)
        | st.tuples(children, children, _ws).map(concat)
        | children.map(lambda c: (f"({c[0]})", 2))
    )


_list_expr = st.recursive(_literal(), _extend, max_leaves=6)


@FAST
@given(_list_expr)
def test_cut_schedule_agrees_with_python_eval(expr):
    text, _ = expr
    expected = eval(text, {"__builtins__": {}})  # oracle: text is generated from a safe grammar
    assert isinstance(expected, list)
    padded = f"{text}+[0]*{1000 - len(expected)}" if len(expected) <= 1000 else None
    if padded is not None:
        full = eval(padded, {"__builtins__": {}})
        got = parse_cut_schedule(padded)
        assert got == full
        assert [type(x) for x in got] == [type(x) for x in full]
    if len(expected) != 1000:
        with pytest.raises(ScheduleError, match=f"has {len(expected)} entries"):
            parse_cut_schedule(text)


_cut_garbage = st.text(alphabet=st.sampled_from(list("[]()0123456789.,+-*eE_ jx\n")), max_size=40) | st.text(max_size=20)


@FAST
@given(_cut_garbage)
def test_cut_schedule_garbage_parses_or_raises_schedule_error(text):
    try:
        result = parse_cut_schedule(text)
    except ScheduleError as err:
        assert err.position is None or 0 <= err.position <= len(text)
    else:
        assert len(result) == 1000
        assert result == eval(text, {"__builtins__": {}})  # whatever is accepted means what Python means


@FAST
@given(st.lists(st.tuples(st.integers(0, 5) | st.floats(0, 1), st.integers(1, 300)), max_size=6))
def test_cut_schedule_from_segments(segments):
    total = sum(units for _, units in segments)
    if total == 1000:
        assert cut_schedule_from_segments(segments) == [v for v, units in segments for _ in range(units)]
    else:
        with pytest.raises(ScheduleError, match=f"total {total} units"):
            cut_schedule_from_segments(segments)


def test_cut_schedule_from_segments_known_and_bad():
    assert cut_schedule_from_segments([(12, 400), (4, 600)]) == parse_cut_schedule("[12]*400+[4]*600")
    for bad in [[(1, 0), (1, 1000)], [(1, 10**12)], [(1, 999.5)], [(math.nan, 1000)], [("1", 1000)], [(1,)], [(1, True)]]:
        with pytest.raises(ScheduleError):
            cut_schedule_from_segments(bad)


# ---------------------------------------------------------------------------------------------
# schedule index disco.py:1253-1262 (cond_fn), frames_skip_steps disco.py:2428-2429 (DoTheRun cell),
# intermediate saves disco.py:2313-2321 (ExtraSettings cell), disco.py:1349-1352 (do_run)
# ---------------------------------------------------------------------------------------------


def test_schedule_index_steps_250_stride_example():
    steps, n = 250, 1000  # diffusion_steps N = (1000 // 250) * 250, stride 4
    stride = n // steps
    for k in range(steps):
        t = (k * stride) * 1000 / n
        assert schedule_index(t) == 999 - 4 * k
    assert schedule_index(249 * 4 * 1000 / n) == 3  # first step reads entry 3
    assert schedule_index(0.0) == 999  # last step reads entry 999


def test_schedule_index_floors_and_bounds():
    assert schedule_index(0.999) == 999
    assert schedule_index(599.9999) == 400
    assert schedule_index(999.5) == 0
    for bad in [1000.0, -0.5, -1, math.nan, math.inf]:
        with pytest.raises(ValueError):
            schedule_index(bad)


@pytest.mark.parametrize("text, expected", [("60%", 60), ("60", 60), (60, 60), ("0%", 0), ("100%", 100), (" 40 %", 40)])
def test_parse_percent(text, expected):
    assert parse_percent(text) == expected


@pytest.mark.parametrize("text", ["60.5%", "sixty", "", "%", "101%", "-1%", 101, "6 0%"])
def test_parse_percent_rejects(text):
    with pytest.raises(ScheduleError):
        parse_percent(text)


def test_calc_frames_skip_steps():
    assert calc_frames_skip_steps(250, parse_percent("60%")) == 150
    assert calc_frames_skip_steps(250, 0) == 0
    assert calc_frames_skip_steps(150, 50) == 75
    # DD computes floor(steps * (percent / 100)) in floats; 90 * 0.7 == 62.99999999999999, so DD skips 62.
    assert calc_frames_skip_steps(90, 70) == 62
    assert calc_frames_skip_steps(100, 29) == 28


@FAST
@given(st.integers(1, 10_000), st.integers(0, 100))
def test_calc_frames_skip_steps_is_dd_float_formula(steps, percent):
    result = calc_frames_skip_steps(steps, percent)
    assert result == math.floor(steps * (percent / 100))
    assert steps * percent // 100 - 1 <= result <= steps * percent // 100


def test_intermediate_saves_doc_example():
    spc = steps_per_checkpoint(250, 10, 2)
    assert spc == 79  # (250 - 10 - 1) // 3
    saves = [j for j in range(250 - 10) if is_intermediate_step(j, spc, 2)]
    assert saves == [79, 158, 237]


def test_steps_per_checkpoint_modes():
    assert steps_per_checkpoint(250, 10, 0) == 260  # never fires
    assert not any(is_intermediate_step(j, 260, 0) for j in range(250))
    assert steps_per_checkpoint(50, 45, 10) == 1  # clamped to at least 1
    assert steps_per_checkpoint(250, 10, [5, 100]) is None
    assert [j for j in range(240) if is_intermediate_step(j, None, [5, 100])] == [5, 100]
    assert not is_intermediate_step(0, 1, 3)  # j = 0 never saves in integer mode
    with pytest.raises(ValueError):
        steps_per_checkpoint(250, 10, -1)
    with pytest.raises(TypeError):
        steps_per_checkpoint(250, 10, "2")

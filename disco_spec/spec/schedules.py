"""Disco Diffusion 5.2's string mini-languages: prompts, prompt schedules, key frames, cut schedules.

Everything here is a pure function of its arguments (standard library only, so importing this module
costs nothing). Each function mirrors one piece of DD 5.2's behaviour, and its module cites the lines of DD's
``disco.py`` it follows. Where DD's observable behaviour is a crash or
garbage, we raise :class:`ScheduleError` instead (each such place says so); everywhere else the result
is the one DD computes, including its floating-point rounding.

DD evaluates cut schedules with ``eval``; :func:`parse_cut_schedule` is a small hand-written
recursive-descent evaluator that accepts only list literals of numbers, ``*`` by integers, ``+`` and
parentheses, so a spec can never run code.

This module is the import surface: the code lives in one module per job (``schedule_error``,
``prompt_parse``, ``keyframes``, ``cut_schedules``, ``step_numbers``) and every public name is
re-exported here, so import from ``disco_spec.spec.schedules``.
"""

from .cut_schedules import CUT_SCHEDULE_LENGTH, cut_schedule_from_segments, parse_cut_schedule, schedule_index
from .keyframes import keyframe_series, keyframes_from_table, parse_keyframes
from .prompt_parse import normalize_weights, parse_prompt, prompt_schedule_lookup, prompts_for_frame
from .schedule_error import ScheduleError
from .step_numbers import calc_frames_skip_steps, is_intermediate_step, parse_percent, steps_per_checkpoint

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
    "prompt_schedule_lookup",
    "prompts_for_frame",
    "schedule_index",
    "steps_per_checkpoint",
]

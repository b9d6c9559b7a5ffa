"""Step numbers Disco Diffusion 5.2 derives from its settings (disco.py:2428-2429 (DoTheRun cell),
disco.py:2313-2321 (ExtraSettings cell), disco.py:1346-1352 (do_run)).

Reads ``frames_skip_steps`` percentages and turns them into the steps skipped, and computes the
spacing and selection of intermediate saves, each with DD's own formula (float rounding included).
Pure functions, standard library only; import them from :mod:`disco_spec.spec.schedules`.
"""

import math
from collections.abc import Sequence

from .schedule_error import ScheduleError

__all__ = ["calc_frames_skip_steps", "is_intermediate_step", "parse_percent", "steps_per_checkpoint"]


def parse_percent(text: str | int) -> int:
    """``frames_skip_steps`` as an integer percentage 0..100: ``"60%"``, ``"60"`` and ``60`` give 60.

    DD does ``int(text.rstrip('%'))`` (disco.py:2428 (DoTheRun cell)), so decimals such as ``"60.5%"`` fail, and so
    do they here.
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


def steps_per_checkpoint(steps: int, skip_steps: int, intermediate_saves: int | Sequence[int]) -> int | None:
    """DD's spacing of intermediate saves (disco.py:2313-2321 (ExtraSettings cell)): int n>0 -> ``max(1,
    (steps-skip_steps-1)//(n+1))``.

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
    """Whether loop iteration ``j`` saves an intermediate image (disco.py:1349-1352 (do_run)), as DD decides it.

    With a spacing (integer mode): ``j > 0 and j % steps_per_ckpt == 0``; with None (list mode):
    ``j in intermediate_saves``.
    """
    if steps_per_ckpt is not None:
        return j > 0 and j % steps_per_ckpt == 0
    if isinstance(intermediate_saves, (str, bytes)) or not isinstance(intermediate_saves, Sequence):
        raise TypeError("with no checkpoint spacing, intermediate_saves must be a list of loop indices")
    return j in intermediate_saves

"""Text prompts must fit CLIP's 77-token context: checked before any model loads.

DD's `clip.tokenize` raises on a longer prompt, and so does disco-spec's encoder, but only once the
models are loaded (minutes into a render). This check counts with the same BPE tokenizer (open_clip's
`SimpleTokenizer`, the one OpenAI's CLIP models use) right after validation, re-done in
`clip_bpe` from open_clip's own merge list so that validating imports no torch. The check is
skipped where open_clip is not installed (a validate-only install); the encoder still refuses the
prompt later.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import SpecError

CLIP_CONTEXT_LENGTH = 77  # tokens, including the start and end tokens


def check_prompt_lengths(spec: Any, count_tokens: Callable[[str], int] | None = None) -> None:
    """Raise SpecError for every text prompt longer than CLIP's context, naming its frame key."""
    problems = prompt_length_problems(spec, count_tokens)
    if problems:
        raise SpecError("; ".join(f"{loc}: {msg}" for loc, msg in problems), problems)


def prompt_length_problems(spec: Any, count_tokens: Callable[[str], int] | None = None) -> list[tuple[str, str]]:
    """(field path, message) for each text prompt longer than CLIP's context (at most 20)."""
    from .clip_bpe import token_counter

    count = count_tokens or token_counter()
    if count is None:
        return []
    keep_suffix = spec.guidance.text_prompt_weight_suffix_in_text
    from . import schedules

    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for frame, prompts in spec.prompts.by_frame("text_prompts").items():
        for i, source in enumerate(prompts):
            text = source if keep_suffix else schedules.parse_prompt(source)[0]
            if text not in seen:
                seen[text] = count(text)
            n = seen[text]
            if n > CLIP_CONTEXT_LENGTH:
                shown = text[:60] + ("..." if len(text) > 60 else "")
                problems.append((
                    f"prompts.text_prompts.{frame}[{i}]",
                    f"prompt is {n} CLIP tokens (with start/end); the limit is {CLIP_CONTEXT_LENGTH} "
                    f"(DD does not truncate either): {shown!r}",
                ))
    return problems[:20]

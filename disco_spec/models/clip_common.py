"""What every CLIP loader shares: OpenAI's normalisation, DD's strict tokenizer, the ClipBundle wrapper
and the OpenAI-state-dict builder (used by registered OpenAI models and by open_clip references)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch

from .. import errors
from .checkpoint_io import untouched_global_rng
from .precision import dd_half_precision
from .types import ClipBundle, ResolvedWeights


OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)


OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@functools.lru_cache(maxsize=1)
def _simple_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def strict_tokenize(prompts: list[str], context_length: int = 77, tokenizer: Any = None) -> torch.Tensor:
    """CLIP token ids [T, context_length]; a prompt that does not fit is an error, as in DD (Q28).

    open_clip's tokenizer silently truncates; OpenAI's `clip.tokenize` (DD) raises instead, so a
    long prompt stops the render rather than being guided by a different text than written.
    """
    tok = tokenizer or _simple_tokenizer()
    if isinstance(prompts, str):
        prompts = [prompts]
    out = torch.zeros(len(prompts), context_length, dtype=torch.long)
    for i, text in enumerate(prompts):
        ids = [tok.sot_token_id, *tok.encode(text), tok.eot_token_id]
        if len(ids) > context_length:
            raise errors.ModelError(
                f"prompt is too long for CLIP: {len(ids)} tokens (including start/end), the limit is "
                f"{context_length}. DD does not truncate prompts either; shorten it: {text[:80]!r}"
                + ("..." if len(text) > 80 else "")
            )
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def _resolution(model: torch.nn.Module) -> int:
    size = model.visual.image_size
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise errors.ModelError(f"non-square CLIP input {tuple(size)} is not supported")
        size = size[0]
    return int(size)


def _bundle(name: str, model: torch.nn.Module, device: torch.device, weights: ResolvedWeights | None, *,
            mean=OPENAI_MEAN, std=OPENAI_STD, tokenize: Callable[[list[str]], torch.Tensor] | None = None,
            extra: dict[str, Any] | None = None) -> ClipBundle:
    model = model.eval().requires_grad_(False).to(device)
    # OpenAI's fp16 models expect the image in the conv weights' dtype (CLIP casts it itself).
    first = getattr(model.visual, "conv1", None)
    image_dtype = first.weight.dtype if first is not None else next(model.visual.parameters()).dtype
    ctx = int(getattr(model, "context_length", 77) or 77)
    tok = tokenize or functools.partial(strict_tokenize, context_length=ctx)

    def encode_image(x: torch.Tensor) -> torch.Tensor:
        return model.encode_image(x.to(device=device, dtype=image_dtype)).float()

    def encode_text(prompts: list[str]) -> torch.Tensor:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return model.encode_text(tok(prompts).to(device)).float()

    return ClipBundle(
        name=name, input_resolution=_resolution(model), encode_image=encode_image, encode_text=encode_text,
        mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std), weights=weights,
        extra={"module": model, "dtype": str(image_dtype), "context_length": ctx, **(extra or {})},
    )


def _openai_model(sd: dict[str, torch.Tensor], device: torch.device, what: str,
                  half: bool | None = None) -> torch.nn.Module:
    """`half` None: DD's rule (fp16 on CUDA, models.precision); True/False forces it (tests on a CPU)."""
    from open_clip.model import build_model_from_openai_state_dict

    half = dd_half_precision(device) if half is None else bool(half)
    try:
        with untouched_global_rng():
            # As open_clip.load_openai_model / clip.load(jit=False): fp16 weights on CUDA, fp32 on CPU.
            model = build_model_from_openai_state_dict(sd, cast_dtype=torch.float16 if half else None)
    except (KeyError, RuntimeError, ValueError, AssertionError) as e:
        raise errors.ModelError(f"{what}: not an OpenAI CLIP state dict ({type(e).__name__}: {e})") from None
    if not half:
        model.float()
    return model

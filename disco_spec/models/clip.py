"""CLIP models as ClipBundles: DD's eight OpenAI models, the tiny ones, and any open_clip model.

OpenAI's files are TorchScript archives; we take only their state dict and rebuild the model with
open_clip's builder for OpenAI state dicts, the same code path (and the same fp16-on-CUDA,
fp32-on-CPU precision) as OpenAI's `clip.load(name, jit=False)` that DD uses.

Any other open_clip architecture + pretrained weights (beyond DD's eight checkboxes): `pretrained` is
either an open_clip tag (open_clip downloads it into our cache; we hash the file it loads so the
manifest records exactly which bytes were used) or a local file pinned by a sha256. open_clip-format
weights run in fp32 on every device (DD has no precedent for them); an OpenAI TorchScript archive given
as a local file is treated like DD's own CLIP models (fp16 on CUDA).

Shared by both: OpenAI's normalisation, DD's strict tokenizer, the ClipBundle wrapper and the
OpenAI-state-dict builder. The random-initialised architecture (tiny models) is `architectures.tiny_clip`.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import torch

from .. import errors
from ..spec.access import InputPolicy
from .checkpoint_io import is_torchscript_archive, read_state_dict, read_torchscript_state_dict, untouched_global_rng
from .precision import dd_half_precision
from .registry import REGISTRY
from .resolve import ROLE_FIELDS, resolve_weights
from .types import ClipBundle, ResolvedWeights
from .weights import cache_dir, weight_sha256


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

# -- DD's OpenAI models (registered): the state dict rebuilt with open_clip's OpenAI builder -------

def _load_registered(weights: ResolvedWeights, device: torch.device, half: bool | None = None,
                     state_dict: dict[str, torch.Tensor] | None = None) -> ClipBundle:
    entry = REGISTRY.get(weights.name)
    cfg = entry.config if entry is not None and entry.role == "clip" else {}
    what = f"CLIP model {weights.name}"
    # TorchScript archives: tensors only, no code run
    sd = read_state_dict(weights.path, what) if state_dict is None else state_dict
    model = _openai_model(sd, device, what, half)
    bundle = _bundle(weights.name, model, device, weights)
    want = cfg.get("input_resolution")
    if want is not None and bundle.input_resolution != want:
        raise errors.ModelError(f"{what}: input resolution {bundle.input_resolution}, expected {want}")
    return bundle


def load_clip(
    weights_or_ref: Any,
    device: torch.device | str,
    *,
    spec_dir: str | os.PathLike | None = None,
    verify_each_time: bool = False,
    fetch: bool = True,
    half: bool | None = None,
    access: InputPolicy | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> ClipBundle:
    """A ClipBundle from ResolvedWeights, a registry name, or a ref with `name` or `arch`+`pretrained`
    (a local `pretrained` file is read only inside the folders `access` allows).

    `half` (OpenAI-format models): None follows DD (fp16 on CUDA); True/False forces fp16/fp32.
    `state_dict` (with ResolvedWeights of a registered model): an OpenAI-layout state dict to build from instead
    of reading the file (seeded random weights, models.tiny)."""
    device = torch.device(device)
    ref = weights_or_ref
    if isinstance(ref, ResolvedWeights):
        return _load_registered(ref, device, half, state_dict)
    if state_dict is not None:
        raise errors.ModelError("a state dict is loaded only with the ResolvedWeights of a registered CLIP model")
    if isinstance(ref, str):
        ref = SimpleNamespace(name=ref, arch=None)
    if getattr(ref, "name", None):
        w = resolve_weights(ref.name, "clip", verify_each_time=verify_each_time, fetch=fetch)
        return _load_registered(w, device, half)
    if getattr(ref, "arch", None):
        return load_open_clip(ref.arch, ref.pretrained, getattr(ref, "sha256", None), device,
                              spec_dir=spec_dir, verify_each_time=verify_each_time, access=access)
    raise errors.ModelError(f"cannot load a CLIP model from {weights_or_ref!r}")

# -- open_clip architectures with a tag or a local file --------------------------------------------

_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def open_clip_cache() -> Path:
    return cache_dir() / "open_clip"


def _looks_like_path(pretrained: str) -> bool:
    return os.sep in pretrained or "/" in pretrained or pretrained.endswith(_FILE_SUFFIXES)


def _check_arch(arch: str) -> None:
    import open_clip

    known = open_clip.list_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise errors.ModelError(f"unknown open_clip architecture {arch!r}.{hint}")


def _tokenizer_for(arch: str, model: torch.nn.Module):
    """Strict (error on overflow) for CLIP's BPE tokenizer; other tokenizers are used as open_clip ships them."""
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer

    try:
        tok = open_clip.get_tokenizer(arch, cache_dir=str(open_clip_cache()))
    except Exception as e:  # noqa: BLE001 - e.g. an HF tokenizer that cannot be downloaded offline
        raise errors.ModelError(f"open_clip tokenizer for {arch}: {e}") from None
    ctx = int(getattr(model, "context_length", None) or getattr(tok, "context_length", 77))
    if isinstance(tok, SimpleTokenizer):
        return lambda prompts: strict_tokenize(prompts, ctx, tok)
    return lambda prompts: tok(prompts)


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def _quiet_random_init_warning():
    """open_clip warns that a model built without weights is random; ours are loaded right after."""
    f = _DropRandomInitWarning()
    root = logging.getLogger()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


def _from_local_file(arch: str, path: Path, device: torch.device, weights: ResolvedWeights) -> torch.nn.Module:
    import open_clip

    what = f"CLIP {arch} from {path}"
    if is_torchscript_archive(path):
        return _openai_model(read_torchscript_state_dict(path, what), device, what)
    with untouched_global_rng(), _quiet_random_init_warning():
        model = open_clip.create_model(arch, pretrained=None, precision="fp32", device="cpu")
    try:
        # open_clip's loader reads with weights_only=True (or safetensors) and adapts known layouts.
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise errors.ModelError(f"{what}: weights do not fit the architecture: {e}") from None
    return model


def _from_tag(arch: str, tag: str, sha256: str | None) -> tuple[torch.nn.Module, ResolvedWeights]:
    import open_clip
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg, list_pretrained_tags_by_model

    cfg = get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = list_pretrained_tags_by_model(arch)
        raise errors.ModelError(f"open_clip has no pretrained tag {tag!r} for {arch}; known tags: {tags}")
    cache = str(open_clip_cache())
    what = f"CLIP {arch}/{tag}"
    try:
        path = download_pretrained(cfg, cache_dir=cache)
    except Exception as e:  # noqa: BLE001 - network/hub errors of every kind
        raise errors.ModelError(
            f"{what}: open_clip could not download the weights ({type(e).__name__}: {e}). If this machine is "
            "offline, download them elsewhere and give `pretrained` as the local file path with its `sha256`."
        ) from None
    if not path or not Path(path).is_file():
        raise errors.ModelError(f"{what}: open_clip did not produce a weight file")
    actual = weight_sha256(path)
    if sha256 and actual != sha256.lower():
        raise errors.WeightsHashMismatch(what, str(path), sha256.lower(), actual)
    weights = ResolvedWeights(role="clip", name=f"{arch}:{tag}", path=str(Path(path).resolve()), sha256=actual,
                              size=Path(path).stat().st_size, source_url=cfg.get("url") or cfg.get("hf_hub"))
    try:
        with untouched_global_rng():
            # Finds the file just downloaded in `cache`; tag-specific settings (preprocessing) apply.
            model = open_clip.create_model(arch, pretrained=tag, precision="fp32", device="cpu", cache_dir=cache)
    except Exception as e:  # noqa: BLE001
        raise errors.ModelError(f"{what}: {e}") from None
    return model, weights


def load_open_clip(arch: str, pretrained: str, sha256: str | None, device: torch.device, *,
                   spec_dir: str | os.PathLike | None = None, verify_each_time: bool = False,
                   access: InputPolicy | None = None) -> ClipBundle:
    """open_clip `arch` with `pretrained` = tag or local file (a local file needs `sha256`, and must lie
    inside the folders `access` allows; a name outside them is only looked at as a tag)."""
    from open_clip.model import get_model_preprocess_cfg

    _check_arch(arch)
    if not pretrained:
        raise errors.ModelError(f"open_clip {arch}: `pretrained` is required (a tag or a local file)")
    access = access or InputPolicy.for_spec(spec_dir)
    local = access.inside(pretrained, ROLE_FIELDS["clip"])  # None: outside, never probed on disk
    if (local is not None and local.is_file()) or _looks_like_path(pretrained):
        if not sha256:
            raise errors.ModelError(f"CLIP {arch}: a local `pretrained` file needs its `sha256`")
        weights = resolve_weights(SimpleNamespace(path=pretrained, sha256=sha256), "clip", spec_dir=spec_dir,
                                  verify_each_time=verify_each_time, access=access)
        model = _from_local_file(arch, Path(weights.path), device, weights)
        name = f"{arch}:{Path(weights.path).name}"
    else:
        model, weights = _from_tag(arch, pretrained, sha256)
        name = f"{arch}:{pretrained}"
    pp = get_model_preprocess_cfg(model)
    return _bundle(name, model, device, weights, mean=pp.get("mean", OPENAI_MEAN), std=pp.get("std", OPENAI_STD),
                   tokenize=_tokenizer_for(arch, model), extra={"arch": arch, "pretrained": pretrained})

"""Any open_clip architecture + pretrained weights, beyond DD's eight CLIP checkboxes.

`pretrained` is either an open_clip tag (open_clip downloads it into our cache; we hash the file it
loads so the manifest records exactly which bytes were used) or a local file pinned by a sha256.
open_clip-format weights run in fp32 on every device (DD has no precedent for them); an OpenAI
TorchScript archive given as a local file is treated like DD's own CLIP models (fp16 on CUDA).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import torch

from .. import errors
from ..spec.access import InputPolicy
from .checkpoint_io import is_torchscript_archive, read_torchscript_state_dict, untouched_global_rng
from .clip_common import OPENAI_MEAN, OPENAI_STD, _bundle, _openai_model, strict_tokenize
from .resolve import ROLE_FIELDS, resolve_weights
from .types import ClipBundle, ResolvedWeights
from .weights import cache_dir, weight_sha256

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

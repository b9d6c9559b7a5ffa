"""CLIP targets for one image/frame: text and image-prompt embeddings with DD's weights
(disco.py:1168-1208 (do_run))."""

from __future__ import annotations

from typing import Sequence

import torch

from ..models.types import ClipBundle
from ..plan.resolve import IMAGE_PROMPT_CUTS, PromptTarget
from ..spec.models import FUZZY_COPIES
from . import rng
from .cutouts import image_prompt_cutouts
from .guidance import ClipTargets


def text_targets(
    clip: ClipBundle, prompts: Sequence[PromptTarget], *, fuzzy: bool, rand_mag: float, generator: torch.Generator
) -> tuple[list[torch.Tensor], list[float]]:
    """Each text prompt's embedding or, with fuzzy_prompt, 25 noisy copies clamped to [0, 1] *instead of it*
    (as DD 5.2: the clean embedding is not kept), each with the prompt's full normalised weight."""
    embeds: list[torch.Tensor] = []
    weights: list[float] = []
    if not prompts:
        return embeds, weights
    encoded = clip.encode_text([p.text for p in prompts]).float()
    for p, e in zip(prompts, encoded):
        if not fuzzy:
            embeds.append(e[None])
            weights.append(p.normalized_weight)
            continue
        for _ in range(FUZZY_COPIES):
            noise = rng.randn(e[None].shape, generator, e.device) * rand_mag
            embeds.append((e[None] + noise).clamp(0, 1))
            weights.append(p.normalized_weight)
    return embeds, weights


def image_targets(
    clip: ClipBundle,
    prompts: Sequence[PromptTarget],
    images: Sequence[torch.Tensor],
    *,
    skip_augs: bool,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[list[torch.Tensor], list[float]]:
    """16 cutout embeddings per image prompt (`images[i]` is prompt i's image in [-1, 1]), each weight w/16."""
    if len(images) != len(prompts):
        raise ValueError(f"{len(prompts)} image prompts but {len(images)} images")
    embeds: list[torch.Tensor] = []
    weights: list[float] = []
    for p, image in zip(prompts, images):
        img = image.to(device)
        cuts = image_prompt_cutouts(img, clip.input_resolution, generator, cutn=IMAGE_PROMPT_CUTS, skip_augs=skip_augs)
        # Quirk Q3: DD normalises these cuts with CLIP's statistics while they are still in [-1, 1].
        embeds.append(clip.encode_image(clip.normalize(cuts)).float())
        weights.extend([p.normalized_weight] * IMAGE_PROMPT_CUTS)
    return embeds, weights


def build_targets(
    clip: ClipBundle,
    text_prompts: Sequence[PromptTarget],
    image_prompts: Sequence[PromptTarget],
    *,
    fuzzy: bool,
    rand_mag: float,
    skip_augs: bool,
    images: Sequence[torch.Tensor],
    fuzzy_generator: torch.Generator,
    image_generator: torch.Generator,
    device: torch.device,
) -> ClipTargets:
    with torch.no_grad():
        te, tw = text_targets(clip, text_prompts, fuzzy=fuzzy, rand_mag=rand_mag, generator=fuzzy_generator)
        ie, iw = image_targets(
            clip, image_prompts, images, skip_augs=skip_augs,
            generator=image_generator, device=device,
        )
    embeds = torch.cat(te + ie).to(device)
    weights = torch.tensor(tw + iw, dtype=torch.float32, device=device)
    return ClipTargets(clip=clip, embeds=embeds, weights=weights)

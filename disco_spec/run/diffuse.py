"""One item's diffusion inside a run: its init from files, previews, partial saves and step events."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from ..engine.checksum import checksum_hex
from ..engine.images import to_pil
from ..engine.item import sample_item
from ..models.load import LoadedModels
from ..plan.resolve import Plan, PlanItem
from ..spec.models import JobSpec
from .inputs import InputStore
from .images import load_image_prompt, load_init_image, write_png_atomic
from .records import RenderResult, StepEvent, record_output

if TYPE_CHECKING:
    from PIL import Image

    from .records import Observer, OutputRecord


@dataclass(frozen=True)
class DiffusionSetup:
    """What every item of a render diffuses with: the loaded models on their device and the noise schedule
    respaced to the plan's steps (engine.sampler.respaced_alphas_cumprod). Built once by run.loop."""

    models: LoadedModels
    device: torch.device
    alphas_cumprod: torch.Tensor
    timesteps: Sequence[int]


def partial_name(spec: JobSpec, item: PlanItem, j: int) -> str:
    """DD's names (disco.py:1362-1371 (do_run)), numbered by plan item so that partials never overwrite each other
    (unlike Q13)."""
    stem = f"{spec.run.batch_name}_{item.index:04d}"
    saves = spec.saving.intermediate_saves
    if isinstance(saves, list):
        name = f"{stem}-{j:03d}.png"
    else:
        total_steps = spec.diffusion.steps - spec.init.skip_steps - 1
        name = f"{stem}-{math.ceil(j / max(total_steps, 1) * 100):02d}%.png"
    return f"partials/{name}" if spec.saving.intermediates_in_subfolder else name


def item_inputs(plan: Plan, item: PlanItem, inputs: InputStore) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """The files an item reads, as tensors: its init image (unless Perlin replaces it) and its image prompts,
    read through the render's InputStore (the InputPolicy, the hashes recorded for the manifest)."""
    init_image = None
    if item.init["kind"] == "image" and not item.init.get("perlin"):
        init_image = load_init_image(item.init["path"], plan.width, plan.height, inputs=inputs)
    prompts = [load_image_prompt(p.text, plan.width, plan.height, inputs=inputs) for p in item.image_prompts]
    return init_image, prompts


def diffuse_item(
    result: RenderResult, item: PlanItem, setup: DiffusionSetup, observers: Sequence[Observer],
    previous: torch.Tensor | None = None, save: bool = True,
) -> tuple[Image.Image, list[OutputRecord]]:
    """Run the sampler for one item (previews, partials, step events); return (final PIL image, partial records)."""
    spec: JobSpec = result.spec
    final = None
    partials = []
    init_image, prompt_images = item_inputs(result.plan, item, result.inputs)
    sums: list[dict[str, int]] = []  # per step: where two renders part (engine.checksum), for the journal
    device = setup.device
    steps = sample_item(spec, result.plan, item, setup.models, setup.alphas_cumprod, setup.timesteps, device,
                        init_image=init_image, image_prompt_images=[im.to(device) for im in prompt_images],
                        previous=previous, on_checksums=sums.append)
    for j, k, pred, stats, is_final in steps:
        preview = None
        if j % spec.run.display_rate == 0 or is_final:
            preview = to_pil(pred)
            write_png_atomic(preview, result.run_dir / "progress.png")
        if save and j in item.intermediate_steps:
            rel = partial_name(spec, item, j)
            write_png_atomic(preview or to_pil(pred), result.run_dir / rel)
            partials.append(record_output(result, observers, rel, "partial", item))
        event = StepEvent(item=item, j=j, k=k, total=item.start_index + 1, stats=stats, preview=preview)
        for o in observers:
            o.on_step(event)
        if is_final:
            final = preview
    assert final is not None
    result.step_checksums[item.index] = {name: [checksum_hex(s[name]) for s in sums] for name in ("x_t", "x0")}
    return final, partials

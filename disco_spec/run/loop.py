"""The item loop of a render: devices and models set up, then every selected item diffused, saved and
journalled (animations hand over to run.frames). Called by run.renderer, which owns the run folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ..engine import sampler
from ..engine.item import configure_determinism, select_device
from ..models.load import load_models
from ..spec.models import JobSpec
from .diffuse import DiffusionSetup, diffuse_item
from .images import write_png_atomic
from .records import publish_output, record_output

if TYPE_CHECKING:
    from .cache import RenderCache
    from .records import Observer, RenderResult
    from .request import PreparedRun, RenderRequest


def run_plan(
    result: RenderResult, run: PreparedRun, request: RenderRequest, *, observers: Sequence[Observer],
    cache: RenderCache | None = None,
) -> None:
    """Render the prepared run's selected items into result.run_dir, continuing `run.resume`'s journal when
    there is one. Custom model files are found under run.spec_dir and the InputPolicy of result.inputs (the
    render's InputStore); missing registry weights are downloaded when request.trust.fetch allows. With a
    `cache` (run.cache), each still item (an animation: every selected frame at once) is served from it when a
    verified entry of the same recipe exists."""
    from .journal import Journal
    from .records import png_metadata

    spec: JobSpec = result.spec
    plan = result.plan
    selected = run.selected
    device = select_device(spec.engine.device)
    configure_determinism(spec.engine.deterministic)
    items = [plan.items[i] for i in selected]
    animation = None
    if plan.animation_mode != "None":
        from . import frames

        items = frames.items_to_compute(plan, selected)
    models = load_models(spec, items, device, spec_dir=run.spec_dir, fetch=request.trust.fetch,
                         access=result.inputs.access)
    if spec.engine.compile:
        from ..engine.item import compile_unet

        models.unet = compile_unet(models.unet)
    result.weights = models.weights
    result.device = str(device)
    alphas_cumprod, timesteps, _ = sampler.respaced_alphas_cumprod(plan.steps)
    setup = DiffusionSetup(models, device, alphas_cumprod, timesteps)
    if plan.animation_mode != "None":
        animation = frames.Animation(result, run, request, setup)
    journal = Journal.begin(result, selected, run.resume)  # run_state.json; on resume, checks the weights
    for o in observers:
        o.on_start(result)

    if animation is not None:
        served = cache.serve_frames(result, items, selected, observers) if cache is not None else None
        if served is not None:
            for item in items:
                if item.index in served:
                    journal.append(item, served[item.index])
            return
        animation.run(journal, observers)
        return

    for item in items:
        done = journal.verified_records(item) if journal.resumed else None
        if done is not None:  # rendered before the interruption, files intact
            for rec in done:
                publish_output(result, observers, rec)
            continue
        cached = cache.serve_item(result, item, observers) if cache is not None else None
        if cached is not None:
            journal.append(item, cached)
            continue
        final, recs = diffuse_item(result, item, setup, observers)
        write_png_atomic(final, result.run_dir / item.output, png_metadata(result, item))
        recs.append(record_output(result, observers, item.output, "image", item))
        journal.append(item, recs)


"""One way to build a model: bench/ builds DD's real architectures with seeded random weights through the render's
own loaders (models.load.load_models(random_weights=True)), not a construction of its own.

- the registry's OpenAI CLIP architectures (models/registry_clip.py) give exactly the keys and shapes of the real
  files (tests/data/key_manifests, made from OpenAI's definition);
- on the tiny spec, random weights and the files give the same modules, dtypes, gradients flags and values (the
  tiny files are those random weights), in CPU and in GPU precision;
- the bench's real models are the loader's classes and precision, and bench/ holds no model construction;
- everything bench/ builds keeps CUDA's dtype rules in GPU precision (tests/cuda_dtype_rules.py), one guided step.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from cuda_dtype_rules import CudaDtypeRules
from disco_spec.engine import sampler
from disco_spec.errors import ModelError
from disco_spec.models import architectures, load
from disco_spec.models.load import load_models
from disco_spec.models.registry import REGISTRY
from disco_spec.models.registry_clip import OPENAI_CLIP_ARCHITECTURES
from disco_spec.plan.resolve import resolve_plan
from disco_spec.spec.load import validate_document

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
engine_step = importlib.import_module("engine_step")
CPU = torch.device("cpu")
pytestmark = pytest.mark.render


@pytest.mark.parametrize("name", sorted(OPENAI_CLIP_ARCHITECTURES))
def test_registered_clip_architectures_have_the_real_files_layout(name):
    assert REGISTRY[name].config["architecture"] == OPENAI_CLIP_ARCHITECTURES[name]
    with torch.device("meta"):
        model = architectures.tiny_clip(OPENAI_CLIP_ARCHITECTURES[name])
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    manifest = json.loads((ROOT / "tests" / "data" / "key_manifests" / f"{name}.json").read_text())
    theirs = {k: tuple(v[0]) for k, v in manifest["tensors"].items()}
    assert ours == theirs


def _layout(models) -> dict[str, list]:
    """Every module's class and every parameter's dtype, shape and requires_grad, per model."""
    def of(module):
        return ([(n, type(m).__module__ + "." + type(m).__qualname__) for n, m in module.named_modules()]
                + [(n, str(p.dtype), tuple(p.shape), p.requires_grad) for n, p in module.named_parameters()])

    out = {"unet": of(models.unet), "secondary": of(models.secondary) if models.secondary else None}
    for c in models.clips:
        out[c.name] = of(c.extra["module"]) + [c.extra["dtype"], c.input_resolution]
    out["lpips"] = of(models.lpips) if models.lpips is not None else None
    return out


@pytest.mark.parametrize("half", [False, True], ids=["cpu-precision", "gpu-precision"])
def test_random_weights_build_what_the_files_build(half, smoke_doc, specs_dir):
    smoke_doc["init"].update(init_image="assets/init-gradient.png", init_scale=1000)  # LPIPS too
    smoke_doc["models"]["extra_clip_models"] = [{"name": "tiny-clip"}, {"name": "tiny-clip-rn"}]
    spec = validate_document(smoke_doc)
    items = resolve_plan(spec).items
    files = load_models(spec, items, CPU, spec_dir=str(specs_dir), half=half)
    random = load_models(spec, items, CPU, spec_dir=str(specs_dir), half=half, random_weights=True)
    assert random.lpips is not None and random.weights == [] and len(files.weights) == 5
    assert _layout(random) == _layout(files)
    for a, b in ((random.unet, files.unet), (random.secondary, files.secondary),
                 *((r.extra["module"], f.extra["module"]) for r, f in zip(random.clips, files.clips))):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sb)  # the tiny files hold exactly these random weights


def test_random_weights_refuse_a_custom_file(smoke_doc):
    smoke_doc["models"]["diffusion_model"] = {"path": "x.pt", "sha256": "0" * 64, "config": "tiny-uncond"}
    spec = validate_document(smoke_doc)
    with pytest.raises(ModelError, match="not a registered diffusion model"):
        load_models(spec, resolve_plan(spec).items, CPU, spec_dir=None, random_weights=True)


def test_bench_has_no_model_construction_of_its_own(monkeypatch):
    constructions = re.compile(r"create_model|convert_weights|convert_to_fp16|build_model_from|\.half\(\)|"
                               r"architectures\.|build_secondary|open_clip\.|SecondaryDiffusion|unet_only|load_state_dict")
    for path in sorted((ROOT / "bench").glob("*.py")):
        hits = [line for line in path.read_text().splitlines() if constructions.search(line)]
        assert hits == [], f"{path.name} builds models itself: {hits}"
    calls = []
    monkeypatch.setattr(engine_step, "load_models", lambda *a, **k: calls.append(k) or "models")
    spec = engine_step._spec("real-default", 4, size=(64, 64))
    assert engine_step._models("real-default", spec, None, CPU) == "models"
    assert calls[0]["random_weights"] is True and calls[0]["half"] is None  # DD's rule: fp16 on CUDA


def test_the_benchs_real_models_are_the_loaders_classes():
    import open_clip

    spec = engine_step._spec("real-default", 4, size=(64, 64), cutn_batches=1, clips=["ViTB32"])
    models = engine_step.random_real_models(spec, CPU, half=True)
    clip = models.clips[0].extra["module"]
    norms = [m for m in clip.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(isinstance(m, open_clip.transformer.LayerNormFp32) for m in norms)  # OpenAI's, as the loader
    assert {p.dtype for p in clip.visual.conv1.parameters()} == {torch.float16}
    assert models.unet.dtype == torch.float16 and next(models.secondary.parameters()).dtype == torch.float32
    assert [c.name for c in models.clips] == ["ViTB32"] and models.weights == []


@pytest.mark.slow
@pytest.mark.parametrize("secondary, clips", [(True, ["ViTB32", "ViTB16", "RN50"]), (False, ["ViTB32"])],
                         ids=["secondary-3-clips", "unet-backward"])
def test_everything_the_bench_builds_keeps_cudas_dtype_rules(secondary, clips):
    """DD's real architectures in GPU precision, one guided step of the bench (64x64) under the dtype rules."""
    spec = engine_step._spec("real-default", 4, size=(64, 64), cutn_batches=1, clips=clips,
                             overrides=[("models.use_secondary_model", secondary)])
    models = engine_step.random_real_models(spec, CPU, half=True)
    plan = resolve_plan(spec)
    item = plan.items[0]
    ac, timesteps, _ = sampler.respaced_alphas_cumprod(plan.steps)
    with CudaDtypeRules(raise_at_once=False) as rules:
        r = engine_step.run_phase(spec, plan, item, models, ac, timesteps, CPU, item.start_index, 1, warmup=0)
    assert rules.violations == [], sorted(set(rules.violations))
    assert rules.reduced_precision_calls > 1000 and bool(torch.isfinite(r["x0"]).all())
    assert load.needs_lpips(spec, plan.items) is False

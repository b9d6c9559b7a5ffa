"""CUDA's dtype rules on a CPU (tests/cuda_dtype_rules.py): every render mode, in the precision a GPU renders in
(DD's fp16 rule forced, as tests/test_reduced_precision.py does), gives no operator a dtype mix CUDA refuses; nor
do the models bench/ builds; and a planted fp32 LayerNorm in an fp16 CLIP (the bench's old build) is caught."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cuda_dtype_rules import CudaDtypeRules, CudaDtypeRuleViolation, violation
from disco_spec.models import load as render_models, precision
from disco_spec.run.renderer import render
from test_cuda_audit import SPECS, VARIANTS, _spec

pytestmark = pytest.mark.render


@pytest.fixture(autouse=True)
def _restore_determinism_flag():
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def _encode(bundle, n: int = 2) -> torch.Tensor:
    r = bundle.input_resolution
    cuts = torch.rand(n, 3, r, r, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss = (bundle.encode_image(bundle.normalize(cuts)) * bundle.encode_text(["a lighthouse"])).sum()
    (g,) = torch.autograd.grad(loss, cuts)
    return g


def test_a_planted_fp32_layernorm_in_an_fp16_clip_is_caught():
    """open_clip's generic build converted to fp16 keeps its LayerNorms in fp32 (the bench's old build): the CPU
    runs it, CUDA's layer norm refuses it. The loader's OpenAI build (LayerNormFp32 casts) passes."""
    import open_clip

    from disco_spec.models import architectures
    from disco_spec.models.clip import _bundle
    from disco_spec.models.registry import REGISTRY

    module = architectures.tiny_clip(REGISTRY["tiny-clip"].config)
    open_clip.model.convert_weights_to_fp16(module)
    planted = _bundle("planted", module, torch.device("cpu"), None)
    _encode(planted)  # the CPU's lenient kernels run it
    with pytest.raises(CudaDtypeRuleViolation, match="native_layer_norm"):
        with CudaDtypeRules():
            _encode(planted)
    with CudaDtypeRules(raise_at_once=False) as rules:
        _encode(planted)
    assert any(v.startswith("native_layer_norm_backward") for v in rules.violations)  # the backward too

    for name in ("tiny-clip", "tiny-clip-rn"):
        loaded = render_models.load_clip(name, "cpu", half=True)
        with CudaDtypeRules() as rules:
            g = _encode(loaded)
        assert rules.reduced_precision_calls > 100 and torch.isfinite(g).all()


@pytest.mark.parametrize("call, refused", [
    (lambda: F.linear(torch.ones(2, 4, dtype=torch.half), torch.ones(3, 4)), None),  # CPU refuses it too
    (lambda: F.layer_norm(torch.ones(2, 4, dtype=torch.half), (4,), torch.ones(4), torch.zeros(4)), "native_layer_norm"),
    (lambda: F.group_norm(torch.ones(1, 4, 2, 2, dtype=torch.half), 2, torch.ones(4), torch.zeros(4)), "native_group_norm"),
    (lambda: F.batch_norm(torch.ones(2, 4, dtype=torch.half), torch.zeros(4), torch.ones(4), torch.ones(4),
                          torch.zeros(4)), "ok"),  # CUDA's mixed batch norm: fp16 input, fp32 statistics
    (lambda: torch.ones(2, 2, dtype=torch.half) + torch.ones(2, 2), "ok"),  # pointwise: promotes everywhere
    (lambda: torch.cat([torch.ones(2, dtype=torch.half), torch.ones(2)]), "ok"),
])
def test_the_rules_refuse_what_cuda_refuses_and_pass_what_it_accepts(call, refused):
    with CudaDtypeRules(raise_at_once=False) as rules:
        try:
            call()
        except RuntimeError:
            assert refused is None  # refused on the CPU as well: not this mode's business
            return
    if refused == "ok":
        assert rules.violations == []
    else:
        assert rules.violations and rules.violations[0].startswith(refused)


def test_batch_norms_one_accepted_mix_and_no_other():
    bn = torch.ops.aten.native_batch_norm.default
    half, full = torch.ones(2, 4, dtype=torch.half), torch.ones(4)
    assert violation(bn, (half, full, full, full, full, False, 0.1, 1e-5), {}) is None
    why = violation(bn, (torch.ones(2, 4), half[0], half[0], half[0], half[0], False, 0.1, 1e-5), {})
    assert why is not None and why.startswith("native_batch_norm:")  # fp32 activations, fp16 statistics
    back = torch.ops.aten.native_batch_norm_backward.default
    why = violation(back, (half, torch.ones(2, 4), full, full, full, full, full, False, 1e-5, [True] * 3), {})
    assert why is not None  # gradient and input of different dtypes


def test_an_unknown_operator_with_mixed_dtypes_is_reported_not_guessed():
    func = torch.ops.aten.histc.default  # not pointwise, not listed: one float input only, so no mix
    assert violation(func, (torch.ones(3, dtype=torch.half),), {}) is None
    func = torch.ops.aten.dist.default
    why = violation(func, (torch.ones(3, dtype=torch.half), torch.ones(3)), {})
    assert why is not None and why.startswith("dist:") and "not an operator known" in why


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_render_mode_in_gpu_precision_keeps_cudas_dtype_rules(variant, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "dd_half_precision", lambda device: True)  # DD's CUDA precision, on the CPU
    seen = []
    real = render_models.load_diffusion

    def spy(*args, **kwargs):
        unet, diffusion = real(*args, **kwargs)
        seen.append(unet.dtype)
        return unet, diffusion

    monkeypatch.setattr(render_models, "load_diffusion", spy)
    with CudaDtypeRules(raise_at_once=False) as rules:
        result = render(_spec(VARIANTS[variant]), tmp_path, progress=False, spec_dir=str(SPECS))
    assert result.outputs and seen == [torch.float16]
    assert rules.reduced_precision_calls > 1000  # the fp16 UNet torso and CLIP ran under the mode
    assert rules.violations == [], f"{variant}: {sorted(set(rules.violations))}"

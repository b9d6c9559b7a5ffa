"""DD 5.3+ mirror symmetry as DD 5.7 renders it: the mirror itself against hand-computed tensors, the steps
it is applied at (guided-diffusion's ``int(len(indices) * (1 - p))``), the DDIM loop applying it before
exactly those steps, and the spec/plan: off by default and then absent (every earlier spec keeps its hash)."""

from __future__ import annotations

import pytest
import torch

from disco_spec.engine.sampler import ddim_sample, respaced_alphas_cumprod
from disco_spec.engine.symmetry import mirror_halves, symmetry_step_indices
from disco_spec.plan.resolve import resolve_plan, with_concrete_seed
from disco_spec.record.ids import spec_sha256
from disco_spec.spec.load import spec_to_document, validate_document


def test_horizontal_mirror_copies_the_left_half_flipped_onto_the_right():
    x = torch.tensor([[[[1.0, 2.0, 3.0, 4.0],
                        [5.0, 6.0, 7.0, 8.0]]]])
    expected = torch.tensor([[[[1.0, 2.0, 2.0, 1.0],
                               [5.0, 6.0, 6.0, 5.0]]]])
    assert torch.equal(mirror_halves(x, horizontal=True, vertical=False), expected)


def test_vertical_mirror_copies_the_top_half_flipped_onto_the_bottom():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]]])
    expected = torch.tensor([[[[1.0, 2.0], [3.0, 4.0], [3.0, 4.0], [1.0, 2.0]]]])
    assert torch.equal(mirror_halves(x, horizontal=False, vertical=True), expected)


def test_both_mirror_horizontally_then_vertically_per_channel():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)  # channel c holds 16c + 4r + col
    out = mirror_halves(x, horizontal=True, vertical=True)
    for c in range(2):
        quarter = [[16 * c + 0, 16 * c + 1], [16 * c + 4, 16 * c + 5]]  # the top-left quarter
        row0, row1 = quarter[0] + quarter[0][::-1], quarter[1] + quarter[1][::-1]
        assert out[0, c].tolist() == [row0, row1, row1, row0]
    assert torch.equal(mirror_halves(x, horizontal=False, vertical=False), x)


def test_odd_side_is_refused_rather_than_shrunk():
    with pytest.raises(ValueError, match="even"):
        mirror_halves(torch.zeros(1, 3, 4, 5), horizontal=True, vertical=False)


def test_steps_are_guided_diffusions_int_of_len_times_one_minus_p():
    # DD 5.7's default 0.09 at 250 steps: int(250 * 0.91) = 227 (float: 227.50000000000003)
    assert symmetry_step_indices(250, [0.09]) == {227}
    # 240 of 250 steps left after skip_steps = 10: int(240 * 0.91) = 218
    assert symmetry_step_indices(240, [0.09, 0.5]) == {218, 120}
    assert symmetry_step_indices(12, [0.0, 1.0]) == {12, 0}  # 12 is never reached (k <= 11); 0 is the last step


def _left_right_symmetric(x: torch.Tensor) -> bool:
    return torch.equal(x, torch.flip(x, [-1]))


def test_ddim_mirrors_x_before_exactly_the_chosen_steps():
    """With ε = 0 and η = 0 each step only rescales x: x stays asymmetric until the mirror, symmetric after."""
    ac, timesteps, _ = respaced_alphas_cumprod(12)
    seen: dict[int, torch.Tensor] = {}
    inputs: list[torch.Tensor] = []

    def model_fn(x, t):
        inputs.append(x.clone())
        return torch.zeros_like(x)

    x_start = torch.randn(1, 3, 4, 8, generator=torch.Generator().manual_seed(3))
    mirror = lambda x: mirror_halves(x, horizontal=True, vertical=False)  # noqa: E731
    at = symmetry_step_indices(10, [0.5])  # an item starting at k = 9 (12 steps, 2 skipped): {5}
    steps = list(ddim_sample(model_fn, x_start, ac, timesteps, eta=0.0, cond_fn=None, start_index=9,
                             generator=torch.Generator().manual_seed(0), transform=mirror, transform_at=at))
    for out, x in zip(steps, inputs):
        seen[out["index"]] = x
    assert at == {5} and sorted(seen) == list(range(10))
    assert all(not _left_right_symmetric(seen[k]) for k in range(9, 5, -1))
    assert all(_left_right_symmetric(seen[k]) for k in range(5, -1, -1))
    assert steps[3]["index"] == 6 and torch.equal(seen[5], mirror(steps[3]["sample"]))  # k = 6's output, mirrored


def _spec(**symmetry):
    doc = {"schema_version": 1}
    if symmetry:
        doc["symmetry"] = symmetry
    return validate_document(doc)


def test_symmetry_off_leaves_the_spec_document_and_its_hash_as_before():
    off = spec_to_document(_spec())
    assert "symmetry" not in off
    assert spec_to_document(_spec(use_horizontal_symmetry=False)) == off  # written, but DD's default: the same
    on = spec_to_document(_spec(use_vertical_symmetry=True))
    assert on["symmetry"] == {"use_horizontal_symmetry": False, "use_vertical_symmetry": True,
                              "transformation_percent": [0.09]}
    assert spec_sha256(on) != spec_sha256(off)
    assert validate_document(on) == _spec(use_vertical_symmetry=True)  # the document reads back


def test_plan_warns_that_plms_ignores_symmetry_as_dd_does():
    def plan(mode, **symmetry):
        spec = validate_document({"schema_version": 1, "diffusion": {"diffusion_sampling_mode": mode},
                                  **({"symmetry": symmetry} if symmetry else {})})
        return resolve_plan(with_concrete_seed(spec, draw=1)[0])

    assert any("symmetry ignored" in w for w in plan("plms", use_horizontal_symmetry=True).warnings)
    assert not any("symmetry" in w for w in plan("ddim", use_horizontal_symmetry=True).warnings)
    assert plan("plms").sha256() == plan("plms", use_horizontal_symmetry=False).sha256()

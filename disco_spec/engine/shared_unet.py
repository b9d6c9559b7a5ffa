"""One UNet forward, with gradients, for both the sampler's ε and the guidance's x̂₀ (secondary model off).

Without the secondary model DD runs the UNet twice per evaluation on the same input: once, without
gradients, for the sampler's ε (p_mean_variance), once more with gradients inside cond_fn for x̂₀.  Both
see the same x; cond_fn runs the UNet at DD's ``cur_t`` (index k), the sampler at its own index.  They
coincide except in PLMS' first step, whose second evaluation is at k−1 while cur_t stays k (quirk Q23).
So: the sampler's forward keeps its graph, and the guidance reuses it exactly when its input is the
same tensor and its timestep the same; otherwise the kept graph is dropped (before the guidance's own
forward, so two graphs are never held at once) and the UNet runs again, as DD.  The values are those of
two separate forwards: the same kernels on the same input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .guidance import X0Fn, unet_x0_fn
from .sampler import t_model_for

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class _Kept:
    x: torch.Tensor  # the sampler's input (kept alive, so no other tensor can take its storage)
    leaf: torch.Tensor  # the leaf the graph starts from
    eps: torch.Tensor  # ε with its graph


class SharedUnetForward:
    """The sampler's ``model_fn`` and the guidance's ``x0_fn`` / ``leaf_fn`` over one UNet forward per step."""

    def __init__(self, eps_fn: EpsFn, alphas_cumprod: torch.Tensor, timesteps: Sequence[int], n_original: int):
        self._eps_fn = eps_fn
        self._timesteps = list(timesteps)
        self._n = n_original
        self._kept: _Kept | None = None
        self.x0_fn: X0Fn = unet_x0_fn(self._guidance_eps, alphas_cumprod, timesteps, n_original)

    def model_fn(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The sampler's ε: computed with gradients, the graph kept for the guidance of this evaluation."""
        self._kept = None
        leaf = x.detach().requires_grad_()
        with torch.enable_grad():
            eps = self._eps_fn(leaf, t)
        self._kept = _Kept(x=x, leaf=leaf, eps=eps)
        return eps.detach()

    def _matches(self, x: torch.Tensor, k: int, t: torch.Tensor) -> bool:
        kept = self._kept
        if kept is None:
            return False
        same_input = (x.data_ptr() == kept.x.data_ptr() and x.shape == kept.x.shape and x.stride() == kept.x.stride()
                      and x._version == kept.x._version)
        # the guidance runs the UNet at cur_t = k; the sampler ran it at t (its own index): share only when equal
        same_time = torch.equal(t.reshape(-1).cpu(), t_model_for(self._timesteps, self._n, k, t.numel(), "cpu"))
        return same_input and same_time

    def leaf_fn(self, x: torch.Tensor, k: int, t: torch.Tensor) -> torch.Tensor:
        """The leaf the guidance differentiates: the kept forward's when it is the same evaluation."""
        if self._matches(x, k, t):
            return self._kept.leaf
        self._kept = None  # not this evaluation's: free its graph before the guidance's own forward
        return x.detach().requires_grad_()

    def _guidance_eps(self, x: torch.Tensor, t_k: torch.Tensor) -> torch.Tensor:
        kept, self._kept = self._kept, None
        if kept is not None and x is kept.leaf:
            return kept.eps
        return self._eps_fn(x, t_k)

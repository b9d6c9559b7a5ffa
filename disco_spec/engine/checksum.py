"""An exact, order-independent checksum of a tensor, computed on its device (where two renders part).

The tensor's bytes are read as 64-bit integer words (as words of its element size when its byte count is not
a multiple of 8) and summed in int64, modulo 2**64. Integer addition is exact and associative, so the result
does not depend on how the device splits the reduction (thread count, block size): two devices that hold the
same bytes give the same checksum, and one changed value changes it (bar a collision of sums). 64-bit words
need no widening: on a CPU the sum costs what a float sum costs (bench/checksum_cost.py; summing int32 words
into int64 was 30 times slower there). The sum stays on the device; the step's one read
(guidance.read_step) brings it to the host with the step's stats: 8 bytes per checksum.
"""

from __future__ import annotations

import torch

_WORDS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def tensor_checksum(x: torch.Tensor) -> torch.Tensor:
    """Sum of the tensor's bytes read as int64 words (else words of its element size), modulo 2**64, as an
    int64 device scalar (two's complement: the same bits as the unsigned sum)."""
    flat = x.detach().contiguous().reshape(-1)
    if (flat.numel() * flat.element_size()) % 8 == 0:
        return flat.view(torch.uint8).view(torch.int64).sum()
    return flat.view(_WORDS[flat.element_size()]).sum(dtype=torch.int64)


def checksum_hex(value: int) -> str:
    """A checksum as the journal writes it: 16 hexadecimal digits (two's complement)."""
    return f"{value & (2**64 - 1):016x}"

"""Seed derivation: the documented formulas that make every image and frame renderable alone.

Image/frame seeds follow DD 5.2 where DD is reproducible (animation frames: base + frame) and depart where
it is not (DD's still images 1..n continue one RNG stream; here still i uses base + i, so any single image
can be rebuilt without rendering the ones before it).

Inside one image, each kind of random draw has its own stream, seeded by `derive_seed(seed, stream)`:
the first 8 bytes of SHA-256("disco-spec/v1/<seed>/<stream>") read big-endian, masked to 63 bits.
Separate streams mean that, e.g., changing the cut count does not shift the initial noise.
"""

from __future__ import annotations

import hashlib

SEED_MODULUS = 2**32
RNG_STREAMS = ("noise", "cutouts", "fuzzy", "perlin", "image_prompts")


def derive_seed(base_seed: int, *names: str | int) -> int:
    """A 63-bit seed for a named stream, independent of every other stream of the same base seed."""
    label = "disco-spec/v1/" + "/".join(str(p) for p in (base_seed, *names))
    return int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest()[:8], "big") & (2**63 - 1)


def still_seed(base_seed: int, batch_index: int) -> int:
    """Seed of still image `batch_index` (0-based): base + index, modulo 2**32."""
    return (base_seed + batch_index) % SEED_MODULUS


def frame_seed(base_seed: int, frame: int, animation_mode: str, video_seed_continuity: bool) -> int:
    """Seed of an animation frame, as DD 5.2 computes it for an uninterrupted run
    (disco.py:1062-1063 (do_run))."""
    if animation_mode == "Video Input":
        offset = 0 if video_seed_continuity else frame + 1
    else:
        offset = frame
    return (base_seed + offset) % SEED_MODULUS


def stream_seeds(seed: int) -> dict[str, int]:
    """The named RNG streams of one image or frame."""
    return {name: derive_seed(seed, name) for name in RNG_STREAMS}

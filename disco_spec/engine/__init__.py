"""The engine: small pure tensor functions (sampler, guidance, cutouts, augmentations, losses, Perlin,
targets) whose every random draw comes from an explicit ``torch.Generator`` (see ``rng``); it takes
tensors and plan items and yields step states. Opens no files, calls no observers.

May import: spec, plan, models (and the foundation module errors).
"""

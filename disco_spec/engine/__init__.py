"""The render engine: small pure tensor functions (cutouts, augmentations, losses, Perlin init,
samplers) whose every random draw comes from an explicit ``torch.Generator`` (see ``rng``)."""

"""The architectures of DD's OpenAI CLIP models (registry config "architecture"), in architectures.tiny_clip's terms.

OpenAI's files carry no config: `build_model` (OpenAI CLIP's clip/model.py, and open_clip's
build_model_from_openai_state_dict that disco-spec's loader uses) reads it off the state dict's shapes. These
are the values it reads for each file; tests/test_random_weights.py builds each and compares its keys and shapes
with tests/data/key_manifests/<name>.json (made from the upstream definitions). Used to build a model of the real
architecture with seeded random weights (models.tiny.random_state_dict: the bench, no file needed).
"""

from __future__ import annotations


def _arch(embed_dim: int, image_size: int, layers, width: int, text_width: int, text_layers: int = 12,
          patch_size: int | None = None) -> dict:
    vision = {"layers": layers, "width": width, "image_size": image_size}
    if patch_size is not None:
        vision["patch_size"] = patch_size
    text = {"context_length": 77, "vocab_size": 49408, "width": text_width, "heads": text_width // 64,
            "layers": text_layers}
    return {"embed_dim": embed_dim, "vision": vision, "text": text}


OPENAI_CLIP_ARCHITECTURES: dict[str, dict] = {
    "ViTB32": _arch(512, 224, 12, 768, 512, patch_size=32),
    "ViTB16": _arch(512, 224, 12, 768, 512, patch_size=16),
    "ViTL14": _arch(768, 224, 24, 1024, 768, patch_size=14),
    "RN50": _arch(1024, 224, [3, 4, 6, 3], 64, 512),
    "RN101": _arch(512, 224, [3, 4, 23, 3], 64, 512),
    "RN50x4": _arch(640, 288, [4, 6, 10, 6], 80, 640),
    "RN50x16": _arch(768, 384, [6, 8, 18, 8], 96, 768),
    "RN50x64": _arch(1024, 448, [3, 15, 36, 10], 128, 1024),
}

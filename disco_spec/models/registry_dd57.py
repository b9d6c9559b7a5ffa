"""The diffusion models DD 5.4-5.7 added: official URLs, SHA-256s and model configs.

Read from DD 5.7's `disco.py` (github.com/alembics/disco-diffusion at 37eb39b): `diff_model_map`
gives each file's URL and SHA-256 (unchanged in every notebook version that lists them), and the
`model_config.update(...)` branches after it give two architectures besides DD 5.2's:

- `portrait_generator_v001` (added in 5.61): a 512px UNet at 128 channels with 4 heads per attention
  layer (no per-head width), otherwise DD 5.2's flags;
- the models fine-tuned by KaliYuga (pixel art, watercolor, pulp sci-fi; added in 5.4/5.5): 256px,
  128 channels, one attention head at 16x16 only, no scale-shift norm, no residual up/down-sampling.

The configs are overrides on guided-diffusion's `model_and_diffusion_defaults()`, as the others in
`registry.py`. DD 5.7 sets `use_fp16 = True` for these models; disco-spec converts the UNet's torso
to fp16 on CUDA for every model (models/precision.py), which is the same on a GPU. Data only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DD57_DIFFUSION", "KALIYUGA_UNET", "PORTRAIT_UNET"]

PORTRAIT_UNET: dict[str, Any] = {
    "attention_resolutions": "32, 16, 8", "class_cond": False, "rescale_timesteps": True, "image_size": 512,
    "learn_sigma": True, "noise_schedule": "linear", "num_channels": 128, "num_heads": 4,
    "num_head_channels": -1, "num_res_blocks": 2, "resblock_updown": True, "use_scale_shift_norm": True,
}

KALIYUGA_UNET: dict[str, Any] = {
    "attention_resolutions": "16", "class_cond": False, "rescale_timesteps": True, "image_size": 256,
    "learn_sigma": True, "noise_schedule": "linear", "num_channels": 128, "num_heads": 1,
    "num_head_channels": -1, "num_res_blocks": 2, "resblock_updown": False, "use_scale_shift_norm": False,
}

_HF = "https://huggingface.co"

# DD name -> (URL, SHA-256, config, description). The file name is the URL's last part, as DD saves it.
DD57_DIFFUSION: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "portrait_generator_v001": (
        f"{_HF}/felipe3dartist/portrait_generator_v001/resolve/main/portrait_generator_v001_ema_0.9999_1MM.pt",
        "b7e8c747af880d4480b6707006f1ace000b058dd0eac5bb13558ba3752d9b5b9", PORTRAIT_UNET,
        "Felipe3DArtist's 512px portrait model (DD 5.61+; 128 channels, 4 heads)."),
    "pixelartdiffusion_expanded": (
        f"{_HF}/KaliYuga/PADexpanded/resolve/main/PADexpanded.pt",
        "a73b40556634034bf43b5a716b531b46fb1ab890634d854f5bcbbef56838739a", KALIYUGA_UNET,
        "KaliYuga's pixel-art model, expanded data set (DD 5.4+; DD's advice for pixel art)."),
    "pixel_art_diffusion_hard_256": (
        f"{_HF}/KaliYuga/pixel_art_diffusion_hard_256/resolve/main/pixel_art_diffusion_hard_256.pt",
        "be4a9de943ec06eef32c65a1008c60ad017723a4d35dc13169c66bb322234161", KALIYUGA_UNET,
        "KaliYuga's pixel-art model, hard edges (DD 5.4+)."),
    "pixel_art_diffusion_soft_256": (
        f"{_HF}/KaliYuga/pixel_art_diffusion_soft_256/resolve/main/pixel_art_diffusion_soft_256.pt",
        "d321590e46b679bf6def1f1914b47c89e762c76f19ab3e3392c8ca07c791039c", KALIYUGA_UNET,
        "KaliYuga's pixel-art model, soft edges (DD 5.4+)."),
    "pixelartdiffusion4k": (
        f"{_HF}/KaliYuga/pixelartdiffusion4k/resolve/main/pixelartdiffusion4k.pt",
        "a1ba4f13f6dabb72b1064f15d8ae504d98d6192ad343572cc416deda7cccac30", KALIYUGA_UNET,
        "KaliYuga's pixel-art model trained on 4k images (DD 5.4+)."),
    "watercolordiffusion_2": (
        f"{_HF}/KaliYuga/watercolordiffusion_2/resolve/main/watercolordiffusion_2.pt",
        "49c281b6092c61c49b0f1f8da93af9b94be7e0c20c71e662e2aa26fee0e4b1a9", KALIYUGA_UNET,
        "KaliYuga's watercolor model, version 2 (DD 5.4+)."),
    "watercolordiffusion": (
        f"{_HF}/KaliYuga/watercolordiffusion/resolve/main/watercolordiffusion.pt",
        "a3e6522f0c8f278f90788298d66383b11ac763dd5e0d62f8252c962c23950bd6", KALIYUGA_UNET,
        "KaliYuga's watercolor model (DD 5.4+)."),
    "PulpSciFiDiffusion": (
        f"{_HF}/KaliYuga/PulpSciFiDiffusion/resolve/main/PulpSciFiDiffusion.pt",
        "b79e62613b9f50b8a3173e5f61f0320c7dbb16efad42a92ec94d014f6e17337f", KALIYUGA_UNET,
        "KaliYuga's pulp sci-fi illustration model (DD 5.4+)."),
}

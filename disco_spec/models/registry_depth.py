"""Registry configs of the depth models (models/registry.py builds the entries from them).

Kept apart from registry.py only for size; see docs/depth-models.md for where each value comes from.
"""

from __future__ import annotations

# Depth models (disco.py:612 (init_midas_depth_model); models/depth*.py, docs/depth-models.md). MiDaS' DPT-Large
# exactly as DD builds it: DPTDepthModel(backbone="vitl16_384", non_negative=True), net 384 "minimal".
DPT_LARGE = {
    "arch": "dpt",
    "vit_img_size": 384,
    "vit_patch_size": 16,
    "vit_embed_dim": 1024,
    "vit_depth": 24,
    "vit_num_heads": 16,
    "vit_num_classes": 1000,
    "hooks": (5, 11, 17, 23),
    "reassemble": (256, 512, 1024, 1024),
    "features": 256,
    "head_features_2": 32,
    "non_negative": True,
    "net_size": 384,
    "resize_mode": "minimal",
    "multiple_of": 32,
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
}

# DPT-Hybrid as DD builds it (DPTDepthModel(backbone="vitb_rn50_384", non_negative=True)): ViT-B/16
# on timm's R50 v2 trunk (3 stages: 3, 4, 9 blocks); hooks = ResNet stages 0, 1 and ViT blocks 8, 11.
DPT_HYBRID = {
    **DPT_LARGE,
    "vit_embed_dim": 768,
    "vit_depth": 12,
    "vit_num_heads": 12,
    "hooks": (0, 1, 8, 11),
    "reassemble": (256, 512, 768, 768),
    "resnet_layers": (3, 4, 9),
    "resnet_channels": (256, 512, 1024),
    "resnet_stem": 64,
}

_IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

# MidasNet(non_negative=True): ResNeXt-101 32x8d (WSL) encoder, 256 features; 384 "upper_bound".
MIDAS_V21 = {
    "arch": "midas_v21",
    "resnet_layers": (3, 4, 23, 3),
    "resnet_channels": (64, 128, 256, 512),
    "cardinality": 32,
    "base_width": 8,
    "stem_width": 64,
    "features": 256,
    "head_features_1": 128,
    "non_negative": True,
    "net_size": 384,
    "resize_mode": "upper_bound",
    "multiple_of": 32,
    **_IMAGENET,
}

# MidasNet_small(features=64, backbone="efficientnet_lite3", exportable=True, non_negative=True,
# blocks={'expand': True}): TF EfficientNet-Lite3 (channel x1.2, depth x1.4); 256 "upper_bound".
MIDAS_V21_SMALL = {
    "arch": "midas_v21_small",
    "channel_multiplier": 1.2,
    "depth_multiplier": 1.4,
    "features": 64,
    "non_negative": True,
    "net_size": 256,
    "resize_mode": "upper_bound",
    "multiple_of": 32,
    **_IMAGENET,
}

# DD's other MiDaS choices. DD 5.2 downloads none of them (the user puts them in model_path) and
# publishes no URL or checksum for them: the URLs are MiDaS' / DPT's READMEs' (at the MiDaS commit
# DD cloned, f82ee7a, and at tag v3), and the only hash anyone publishes is the 8-hex SHA-256 prefix
# in each file name, which MiDaS' own torch.hub loader checks (check_hash=True). So these entries
# are *unpinned*: sha256 = "" and the prefix is checked instead; the file's full SHA-256 is still
# computed and recorded in every manifest that uses it.
MIDAS_OTHERS = (
    ("dpt_hybrid", "dpt_hybrid-midas-501f0c75.pt", DPT_HYBRID, (
        "https://github.com/intel-isl/DPT/releases/download/1_0/dpt_hybrid-midas-501f0c75.pt",
        "https://github.com/isl-org/MiDaS/releases/download/v3/dpt_hybrid-midas-501f0c75.pt"),
     "MiDaS v3 DPT-Hybrid (ViT-B/16 on a ResNet-50 trunk, 384)."),
    ("dpt_hybrid_nyu", "dpt_hybrid_nyu-2ce69ec7.pt", DPT_HYBRID, (
        "https://github.com/intel-isl/DPT/releases/download/1_0/dpt_hybrid_nyu-2ce69ec7.pt",),
     "DPT-Hybrid fine-tuned on NYUv2 (DPT's release), used by DD exactly like dpt_hybrid."),
    ("midas_v21", "midas_v21-f6b98070.pt", MIDAS_V21, (
        "https://github.com/AlexeyAB/MiDaS/releases/download/midas_dpt/midas_v21-f6b98070.pt",
        "https://github.com/isl-org/MiDaS/releases/download/v2_1/midas_v21-f6b98070.pt"),
     "MiDaS v2.1 (ResNeXt-101 32x8d WSL encoder, 384, ImageNet normalisation)."),
    ("midas_v21_small", "midas_v21_small-70d6b9c8.pt", MIDAS_V21_SMALL, (
        "https://github.com/AlexeyAB/MiDaS/releases/download/midas_dpt/midas_v21_small-70d6b9c8.pt",
        "https://github.com/isl-org/MiDaS/releases/download/v2_1/midas_v21_small-70d6b9c8.pt"),
     "MiDaS v2.1 small (EfficientNet-Lite3 encoder, 256, ImageNet normalisation)."),
)

# AdaBins as InferenceHelper(dataset='nyu') builds it: UnetAdaptiveBins.build(n_bins=256, min_val=0.001,
# max_val=10) on tf_efficientnet_b5_ap (channel x1.6, depth x2.2).
ADABINS_NYU = {
    "arch": "adabins",
    "channel_multiplier": 1.6,
    "depth_multiplier": 2.2,
    "decoder_features": 2048,
    "decoder_out": 128,
    "embedding_dim": 128,
    "n_query_channels": 128,
    "patch_size": 16,
    "num_heads": 4,
    "dim_feedforward": 1024,
    "num_layers": 4,
    "regressor_hidden": 256,
    "n_positions": 500,
    "n_bins": 256,
    "min_depth": 0.001,
    "max_depth": 10.0,
}

"""Semantic segmentation recipes.

On scenes of the bundled digits (training/scenes.py: 8,000 training scenes from the 4,000 training
digits, 2,000 held-out scenes from the 1,000 test digits), 11 classes (background and the ten
digits), scale-jitter augmentation (no flips: digits are not mirror-symmetric), one-cycle Adam,
on a CPU in minutes: `unet-digit-scenes` and `deeplabv3_plus-digit-scenes` (a narrow MobileNetV2
backbone).

On tfds oxford_iiit_pet (3,680 training and 3,669 test photos of cats and dogs; trimaps 1 = pet,
2 = background, 3 = border, read as classes 0..2), for a GPU: `unet-oxford-pet` at 128x128 (the
TensorFlow segmentation tutorial's size) and `deeplabv3_plus-oxford-pet` on ResNet-50 at 256x256.
"""

from training.recipes import add

DIGIT_SCENES = {
    "data": {"dataset": "digit_scenes:sample:mnist5k", "shuffle_buffer": 2048},
    "task": {"name": "segmentation", "augment": "scale", "scale": 0.2, "dice": 0.0},
    "optimizer": {"name": "adam", "lr": 3e-3, "schedule": "onecycle"},
    "train": {"epochs": 3, "batch_size": 32, "eval_batch_size": 64},
}
OXFORD_PET = {
    "data": {"dataset": "oxford_iiit_pet", "shuffle_buffer": 4096},
    "task": {
        "name": "segmentation",
        "classes": ["pet", "background", "border"],
        "mask_offset": 1,
        "background": 1,  # what the scale jitter pads with
        "augment": "flip_scale",
        "scale": 0.2,
    },
    "optimizer": {"name": "adam", "lr": 1e-3, "schedule": "onecycle"},
}

add(
    "unet-digit-scenes",
    description="U-Net segmenting scenes of real digits (11 classes: background and 0-9), "
    "offline from the bundled digits.",
    model={"name": "unet", "overrides": {"depth": 4, "filters": 16}},
    **DIGIT_SCENES,
)
add(
    "deeplabv3_plus-digit-scenes",
    description="DeepLabV3+ on a MobileNetV2 (alpha 0.5) segmenting scenes of real digits, "
    "offline from the bundled digits.",
    model={
        "name": "deeplabv3_plus",
        "overrides": {
            "backbone": "mobilenet_v2",
            "backbone_overrides": {"alpha": 0.5},
            "atrous_rates": [1, 2, 3],  # the 8x8 map of a 128x128 scene
            "aspp_filters": 96,
            "low_level_filters": 32,
            "decoder_filters": 96,
        },
    },
    **DIGIT_SCENES,
)
add(
    "unet-oxford-pet",
    description="U-Net on Oxford-IIIT Pet trimaps (pet, background, border) at 128x128; a GPU.",
    model={"name": "unet", "overrides": {"depth": 4, "filters": 32}},
    **{**OXFORD_PET, "task": {**OXFORD_PET["task"], "image_size": [128, 128]}},
    train={"epochs": 40, "batch_size": 64, "eval_batch_size": 64},
)
add(
    "deeplabv3_plus-oxford-pet",
    description="DeepLabV3+ on ResNet-50 on Oxford-IIIT Pet trimaps at 256x256; a GPU.",
    model={
        "name": "deeplabv3_plus",
        "overrides": {"backbone": "resnet50", "atrous_rates": [3, 6, 9]},  # the 16x16 map
    },
    **{**OXFORD_PET, "task": {**OXFORD_PET["task"], "image_size": [256, 256]}},
    train={"epochs": 40, "batch_size": 32, "eval_batch_size": 32},
)

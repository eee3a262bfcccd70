"""Dense prediction recipes: semantic segmentation (and, to come, detection).

`unet-digit-scenes`: a U-Net on scenes of the bundled digits (training/scenes.py; 8,000 training
scenes from the 4,000 training digits, 2,000 held-out scenes from the 1,000 test digits), 11
classes (background and the ten digits), flip and scale-jitter augmentation, one-cycle Adam, on
a CPU in minutes.
"""

from training.recipes import add

add(
    "unet-digit-scenes",
    description="U-Net segmenting scenes of real digits (11 classes: background and 0-9), "
    "offline from the bundled digits.",
    model={"name": "unet", "overrides": {"depth": 4, "filters": 16}},
    data={"dataset": "digit_scenes:sample:mnist5k", "shuffle_buffer": 2048},
    task={"name": "segmentation", "augment": "flip_scale", "scale": 0.2, "dice": 0.0},
    optimizer={"name": "adam", "lr": 3e-3, "schedule": "onecycle"},
    train={"epochs": 4, "batch_size": 32, "eval_batch_size": 64},
)

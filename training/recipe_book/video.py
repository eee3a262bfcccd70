"""Video classification recipes: R(2+1)D, a ConvLSTM, a factorised video transformer (ViViT) and a
frame-averaging 2D baseline on moving digits (offline: clips of the 4,000 / 1,000 bundled real
digits, the label the direction of motion, so a single frame says nothing), and R(2+1)D-18 on
UCF101 (split 1) for users with the data (offline it trains on moving digits instead).

The clips (training/moving_digits.py): 16 frames of 64x64x1, one real digit moving 2 pixels a
frame in one of 8 directions; 4,000 training clips (one per bundled training digit) and the 1,000
validation clips made from the 1,000 held-out digits. Chance is 12.5%.

Measured (CPU, 2 cores shared with two other training jobs, load ~15; `/usr/bin/time -v`; user +
system CPU seconds include the export and its four TFLite variants):
- r2plus1d-moving-digits, 2 epochs (250 steps): validation accuracy 1.000 on the 1,000 test
  clips (1.000 already after the first epoch); 669 CPU s (658 user + 11 system), 52.7 min wall on
  the shared machine. TFLite (500 test clips): float32 / float16 / dynamic / int8 all 1.000 and 100%
  agreement; the converter leaves the Conv3D weights in float32 in the dynamic and int8 variants
  (3.6 MB each, as float32; float16 1.8 MB).
- frames-moving-digits (the baseline), 2 epochs: 0.158 (train 0.28: it memorises, it cannot see
  the motion); 242 CPU s (238 + 4), 26.9 min wall; TFLite int8 0.140.
- convlstm-moving-digits, 100 steps (`--set train.max_steps=100`, no export): 1.000; 107 CPU s.
- vivit-moving-digits, 250 steps (`--set train.max_steps=250`, no export): 0.991; 162 CPU s.
"""

from training.recipes import add

MOVING_DIGITS = {"dataset": "moving_digits:sample:mnist5k", "shuffle_buffer": 4096}
# all 16 frames at 64x64; a flip mirrors the direction label (E <-> W); 500 test clips for TFLite
MOVING_TASK = {
    "name": "video_classification",
    "frames": 16,
    "frame_stride": 1,
    "image_size": [64, 64],
    "augment": "flip",
    "report_clips": 500,
}
# R(2+1)D at CPU size: one block a stage, widths 16..128
SMALL_R2PLUS1D = {
    "widths": [16, 32, 64, 128],
    "blocks": [1, 1, 1, 1],
    "stem_width": 16,
    "batch_norm_momentum": 0.9,
}

add(
    "r2plus1d-moving-digits",
    description="A small R(2+1)D (one (2+1)D block a stage, widths 16-128) classifies the "
    "direction in which a real digit moves across 16 frames.",
    model={"name": "r2plus1d_18", "overrides": SMALL_R2PLUS1D},
    data=MOVING_DIGITS,
    task=MOVING_TASK,
    optimizer={"name": "adam", "lr": 2e-3, "schedule": "cosine"},
    train={"epochs": 2, "batch_size": 32, "eval_batch_size": 100},
)
add(
    "frames-moving-digits",
    description="The frame-averaging baseline: the cnn on every frame, its probabilities averaged "
    "over the clip; it sees no motion, so it stays near chance (12.5%) on moving digits.",
    model={
        "name": "frames",
        "overrides": {
            "backbone": "cnn",
            "backbone_overrides": {"batch_norm": True, "filters": [16, 32]},
        },
    },
    data=MOVING_DIGITS,
    task=MOVING_TASK,
    optimizer={"name": "adam", "lr": 1e-3, "schedule": "cosine"},
    train={"epochs": 2, "batch_size": 32, "eval_batch_size": 100},
)
add(
    "convlstm-moving-digits",
    description="A ConvLSTM classifier (a stride-4 conv stem per frame, two ConvLSTM layers) on "
    "the direction a real digit moves.",
    model={
        "name": "convlstm",
        "overrides": {
            "stem_filters": 16,
            "stem_stride": 4,
            "filters": [32, 32],
            "batch_norm_momentum": 0.9,
        },
    },
    data=MOVING_DIGITS,
    task=MOVING_TASK,
    optimizer={"name": "adam", "lr": 2e-3, "schedule": "cosine"},
    train={"epochs": 2, "batch_size": 32, "eval_batch_size": 100},
)
add(
    "vivit-moving-digits",
    description="A small ViViT (4x8x8 tubelets, four factorised space-then-time attention "
    "blocks of width 64) on the direction a real digit moves.",
    model={
        "name": "vivit",
        "overrides": {"tubelet": [4, 8, 8], "width": 64, "depth": 4, "num_heads": 4},
    },
    data=MOVING_DIGITS,
    task=MOVING_TASK,
    optimizer={"name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "schedule": "cosine",
               "warmup_steps": 50},
    train={"epochs": 4, "batch_size": 32, "eval_batch_size": 100},
)  # fmt: skip
add(
    "r2plus1d_18-ucf101",
    description="R(2+1)D-18 on UCF101 split 1 (tfds ucf101/ucf101_1_256): 16 frames 2 apart "
    "from a random start in the middle 48, a random resized crop to 112x112 and a flip; for a "
    "GPU. Offline it trains on moving digits instead (data.fallback).",
    model={"name": "r2plus1d_18"},
    data={
        "dataset": "ucf101/ucf101_1_256",
        "fallback": "moving_digits:sample:mnist5k",
        "cache": False,  # 9,537 clips of 48 frames of 112x112x3 do not fit in memory
        "shuffle_buffer": 512,
    },
    task={
        "name": "video_classification",
        "frames": 16,
        "frame_stride": 2,
        "clip_frames": 48,
        "image_size": [112, 112],
        "augment": "crop_flip",
        "crop_scale": 0.6,
        "report_clips": 200,
    },
    optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4,
               "schedule": "cosine", "warmup_steps": 500},
    train={"epochs": 45, "batch_size": 32, "eval_batch_size": 32},
    export={"tflite": {"variants": ["float32", "float16", "dynamic"]}},
)  # fmt: skip

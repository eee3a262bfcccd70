"""Object detection recipes: FCOS (zoo/vision/fcos.py) with the detection task
(training/tasks/detection.py).

`fcos-digit-scenes`: on scenes of the bundled digits (training/scenes.py; 8,000 training scenes
from the 4,000 training digits, 2,000 held-out scenes from the 1,000 test digits), 10 classes,
a ResNet-18 of width 16 under a three-level pyramid (P3-P5, strides 8-32) of 64 channels, scale
jitter without flips (a mirrored digit is not a digit), 8 epochs of one-cycle Adam, on a CPU in
minutes.

`fcos-voc`: tfds `voc/2007` (trainval 5,011 images, test 4,952; 20 classes), FCOS's own
configuration (ResNet-50, P3-P7, 256 channels, 4-conv towers) at 512x512, flip and scale jitter,
SGD with momentum, warm-up and a cosine schedule, mixed precision: a GPU's work (not run here; the
backbone starts from scratch: the zoo has no ImageNet weights). Its mAP is COCO's, over every
object, VOC's "difficult" ones included, not VOC's own 11-point AP.
"""

from training.recipes import add

# the exports' NMS (and the validation's), recorded in export_info.json; `--set
# task.nms.iou_threshold=0.5` changes one
NMS = {"max_detections": 100, "iou_threshold": 0.6, "score_threshold": 0.05}

add(
    "fcos-digit-scenes",
    description="FCOS finding and reading the digits of scenes of real digits (10 classes), "
    "offline from the bundled digits.",
    model={
        "name": "fcos",
        "overrides": {
            "backbone": "resnet18",
            "backbone_overrides": {"width": 16},
            "levels": [3, 4, 5],
            "fpn_filters": 64,
            "head_convs": 2,
            "groups": 8,
        },
    },
    data={"dataset": "digit_scenes:sample:mnist5k", "shuffle_buffer": 2048},
    task={
        "name": "detection",
        "max_objects": 5,
        "augment": "scale",
        "scale": 0.2,
        "size_ranges": [24, 48],
        "nms": NMS,
    },
    optimizer={"name": "adam", "lr": 3e-3, "schedule": "onecycle", "clipnorm": 10.0},
    train={"epochs": 8, "batch_size": 32, "eval_batch_size": 100},
)

add(
    "fcos-voc",
    description="FCOS on PASCAL VOC 2007 (20 classes) at 512x512: a GPU recipe.",
    model={"name": "fcos", "overrides": {"backbone": "resnet50", "levels": [3, 4, 5, 6, 7]}},
    data={
        "dataset": "voc/2007",
        "train_split": "train+validation",
        "validation_split": "test",
        "shuffle_buffer": 1024,
        "cache": False,
    },
    task={
        "name": "detection",
        "image_size": [512, 512],
        "max_objects": 64,
        "augment": "flip_scale",
        "scale": 0.25,
        "nms": NMS,
    },
    optimizer={
        "name": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "clipnorm": 10.0,
        "schedule": "cosine",
        "warmup_steps": 500,
    },
    train={"epochs": 60, "batch_size": 16, "eval_batch_size": 16, "checkpoint_every": 2000},
    run={"mixed_precision": "auto"},
)

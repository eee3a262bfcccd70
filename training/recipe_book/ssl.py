"""Self-supervised recipes on the digits: SimCLR and SimSiam pretraining of the cnn's encoder on
the training images without their labels (offline: the 4,000 bundled digits, `data.fallback`),
scored each epoch by a linear probe on 40 labelled digits (4 of each class: `task.probe_per_class`)
and by k-NN on all the training labels, on the held-out digits. The baseline a probe must beat:
`python -m training train cnn --set data.per_class=4 ...`, the cnn trained from scratch on the same
40 images. The encoder is exported (task kind `embedding`); a classifier can start from it by
layer name (`--set model.init_from=runs/simclr-digits`).
"""

from training.recipes import add

ENCODER = {"backbone": "cnn", "backbone_overrides": {"batch_norm": True, "convs_per_stage": 2}}
DIGITS = {"dataset": "mnist", "fallback": "sample:mnist5k"}
VIEWS = {
    "zoom": [0.8, 1.5],
    "aspect": 0.15,
    "rotation": 15.0,
    "shift": 0.15,
    "brightness": 0.2,
    "contrast": 0.4,
    "noise": 0.05,
}

add(
    "simclr-digits",
    description="SimCLR (NT-Xent over the global batch) pretraining of the cnn encoder on the "
    "digits without labels; linear probe on 40 labels and k-NN each epoch.",
    model={"name": "simclr", "overrides": ENCODER},
    data=DIGITS,
    task={"name": "simclr", "temperature": 0.2, **VIEWS},
    optimizer={"name": "adam", "lr": 2e-3, "schedule": "cosine", "warmup_steps": 30},
    train={"epochs": 8, "batch_size": 128},
)
add(
    "simsiam-digits",
    description="SimSiam (no negatives: predictor and stop-gradient) pretraining of the cnn "
    "encoder on the digits without labels; linear probe on 40 labels and k-NN each epoch.",
    model={"name": "simsiam", "overrides": ENCODER},
    data=DIGITS,
    task={"name": "simsiam", **VIEWS},
    optimizer={"name": "adam", "lr": 1e-3, "schedule": "cosine", "warmup_steps": 30},
    train={"epochs": 8, "batch_size": 128},
)

"""Image-classification recipes: the cnn on MNIST, and every vision model on CIFAR-10.

`cnn`: the zoo cnn with batch normalization and two convs per stage, rotation/scale/shift
augmentation, label smoothing and one-cycle Adam, in a budget of 1,240 steps (`train.max_steps`):
20 epochs of the 4,000 bundled digits it trains on offline (`data.fallback`), 1.3 epochs of the
60,000 of tfds `mnist`, so that `make train-cnn` takes minutes on a CPU either way
(`--set train.max_steps=0` for 20 full epochs). `cnn-classic`: keras-io's mnist_convnet as it was.
`cnn-pruned`: the cnn with 80% of every conv and dense kernel pruned by magnitude in the same
budget (training/extensions/prune.py), for a gzipped TFLite file about 3x smaller.
`cnn-distilled`: a cnn of 6,866 parameters (8 and 16 filters, no dropout), the same budget,
taught by a trained `cnn-teacher` run (training/tasks/distillation.py; `task.teacher`, by default
the newest finished run under runs/cnn-teacher): `cnn-teacher` is the cnn without label
smoothing, which would flatten the wrong classes' probabilities that the student learns from
(Mueller et al. 2019: with the `cnn` run as teacher the student gained nothing here).
`cnn-adversarial`: the `cnn` recipe on PGD adversarial examples (training/extensions/
adversarial.py), robust at eps 0.1.

The CIFAR-10 recipes (`<model>-cifar10`) share one training setup: pad-4 random crop and flip in
the tf.data pipeline, label smoothing 0.1, mixed precision on GPUs (`run.mixed_precision=auto`:
bfloat16 on A100/H100, float16 on older GPUs, float32 on CPUs) and no weight decay on
BatchNormalization/LayerNormalization parameters and biases. The convnets use SGD with Nesterov
momentum; ViT uses AdamW with warm-up.

Weight decay in Keras optimizers is decoupled (`w -= lr * wd * w`, outside the momentum), where
PyTorch's SGD adds `wd * w` to the gradient, which momentum 0.9 then carries ten times over:
Keras' 5e-3 here is the papers' and PyTorch recipes' 5e-4.
"""

from training.recipes import add

# the cnn recipe's setup, which its variants share
CNN = {
    "model": {"name": "cnn", "overrides": {"batch_norm": True, "convs_per_stage": 2}},
    "data": {"dataset": "mnist", "fallback": "sample:mnist5k"},
    "task": {
        "name": "classification",
        "augment": "affine",
        "rotation": 10.0,
        "scale": 0.1,
        "shift": 0.1,
        "label_smoothing": 0.1,
    },
    "optimizer": {"name": "adam", "lr": 3e-3, "schedule": "onecycle"},
    "train": {"epochs": 20, "batch_size": 64, "max_steps": 1240},  # 20 x 62 steps on the sample
}

add(
    "cnn",
    description="A small convnet with batch normalization on MNIST (rotation/scale/shift "
    "augmentation, one-cycle Adam), exported for serving; offline, the bundled 5,000 digits.",
    **CNN,
)
add(
    "cnn-pruned",
    description="The cnn recipe with 80% of its conv and dense kernel weights pruned by magnitude "
    "(polynomial schedule), exported with zeros: its gzipped TFLite is about 3x smaller.",
    **CNN,
    # from epoch 2 to 80% of the run, a step every half epoch (the sample's 62-step epochs): on
    # the sample, within 0.5 points of the cnn on 3 seeds where the default schedule (every 100
    # steps to 70%) lost 0.6
    prune={
        "sparsity": 0.8,
        "layers": ["conv", "dense"],
        "begin_step": 124,
        "end_step": 992,
        "frequency": 31,
    },
)
add(
    "cnn-classic",
    description="The classic convnet (keras-io mnist_convnet) on MNIST, exported for serving.",
    model={"name": "cnn"},
    data={"dataset": "mnist", "fallback": "sample:mnist5k"},
    task={"name": "classification", "augment": "crop", "label_smoothing": 0.0},
    optimizer={"name": "adam", "lr": 1e-3, "schedule": "cosine"},
    train={"epochs": 20, "batch_size": 64},
)
add(
    "cnn-teacher",
    description="The cnn recipe without label smoothing, as a teacher for cnn-distilled (label "
    "smoothing erases what the wrong classes' probabilities would teach).",
    **{**CNN, "task": {**CNN["task"], "label_smoothing": 0.0}},
)
add(
    "cnn-distilled",
    description="A cnn with 9% of the cnn recipe's parameters (8 and 16 filters, no dropout) "
    "distilled from a cnn-teacher run (task.teacher: default the newest in runs/cnn-teacher).",
    **{
        **CNN,
        "model": {
            "name": "cnn",
            "overrides": {**CNN["model"]["overrides"], "filters": [8, 16], "dropout": 0.0},
        },
        "task": {
            **CNN["task"],
            "name": "distillation",
            "teacher": "runs/cnn-teacher",
            "temperature": 4.0,
            "alpha": 0.9,
            "label_smoothing": 0.0,
        },
    },
)
add(
    "cnn-adversarial",
    description="The cnn recipe with Madry et al.'s PGD adversarial training (L-inf eps 0.1 of "
    "the pixel range, 7 steps, random start): robust to PGD-20 at eps 0.1.",
    **CNN,
    adversarial={"attack": "pgd", "eps": 0.1, "steps": 7, "random_start": True},
)

NORMS_AND_BIASES = ["gamma", "beta", "bias"]


def cifar10(model, description, overrides, optimizer, epochs, batch_size=128):
    add(
        f"{model}-cifar10",
        description=description,
        model={"name": model, "overrides": overrides},
        data={"dataset": "cifar10"},
        task={"name": "classification", "augment": "crop_flip", "label_smoothing": 0.1},
        optimizer={"no_weight_decay": NORMS_AND_BIASES, **optimizer},
        train={"epochs": epochs, "batch_size": batch_size},
        run={"mixed_precision": "auto"},
    )


# SGD + Nesterov momentum 0.9, decoupled weight decay 5e-3 (= 5e-4 coupled): the convnets.
SGD_ONECYCLE = {"name": "sgd", "lr": 0.1, "weight_decay": 5e-3, "schedule": "onecycle"}
SGD_COSINE = {"name": "sgd", "lr": 0.1, "weight_decay": 5e-3, "schedule": "cosine"}
CIFAR_STEM = {"cifar_stem": True}

for depth in (18, 34, 50):
    cifar10(
        f"resnet{depth}",
        f"ResNet-{depth} with the CIFAR stem (3x3 conv, no max-pool), one-cycle SGD for 30 epochs.",
        CIFAR_STEM,
        SGD_ONECYCLE,
        epochs=30,
    )
for depth in (11, 16):
    cifar10(
        f"vgg{depth}",
        f"VGG-{depth} with BatchNormalization and 512-unit fc layers (the usual CIFAR VGG), "
        "cosine SGD for 60 epochs.",
        {"batch_norm": True, "fc_units": 512},
        {**SGD_COSINE, "lr": 0.05},
        epochs=60,
    )
for model, name in [
    ("inception_v3", "Inception-v3"),
    ("googlenet", "GoogLeNet"),
    ("mobilenet_v2", "MobileNetV2"),
    ("mobilenet_v3_small", "MobileNetV3-Small"),
    ("efficientnet_b0", "EfficientNet-B0"),
]:
    cifar10(
        model,
        f"{name} with the stride-1 CIFAR stem, cosine SGD for 60 epochs.",
        CIFAR_STEM,
        SGD_COSINE,
        epochs=60,
    )
cifar10(
    "vit_tiny16",
    "ViT-Tiny with 4x4 patches (64 tokens), AdamW with 5 warm-up epochs and cosine decay for "
    "100 epochs.",
    {"patch_size": 4},
    {
        "name": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.05,
        "schedule": "cosine",
        "warmup_steps": 5 * 390,  # 5 epochs of 50,000 / 128
        "global_clipnorm": 1.0,
        "no_weight_decay": [*NORMS_AND_BIASES, "token", "embedding"],
    },
    epochs=100,
)

"""The classic small convnet (keras-io mnist_convnet): conv-pool-conv-pool-dropout-dense.

Raw pixels in (0..255, any HxWxC), class probabilities out; rescaling is part of the graph so an
exported model takes images as they come. The defaults build keras-io's model exactly; the `cnn`
recipe adds batch normalization (conv-BN-ReLU, the conv without its bias) and a second conv per
stage.
"""

import keras
from keras import layers

from zoo.registry import register

# Search spaces for `python -m training search --space NAME` (training/search.py): recipe paths
# mapped to {"choice": [...]}, {"int": [lo, hi(, step)]}, {"float": [lo, hi(, step)]} (either with
# "log": True) or {"tuple": [one of those per item]}. Depth is convs per stage, not more stages:
# at 28x28 with valid padding a third stage of two convs has nothing left (28-24-12-8-4-0).
SEARCH_SPACES = {
    "cnn": {  # the cnn recipe's two stages: width of each, depth, dropout
        "model.overrides.filters": {
            "tuple": [{"choice": [8, 12, 16, 24, 32]}, {"choice": [16, 24, 32, 48, 64]}]
        },
        "model.overrides.convs_per_stage": {"int": [1, 3]},
        "model.overrides.dropout": {"float": [0.0, 0.5, 0.1]},
    },
    "cnn-lean": {  # every model smaller than the cnn recipe's 75,818 parameters
        "model.overrides.filters": {
            "tuple": [{"choice": [8, 12, 16, 24]}, {"choice": [16, 24, 32, 48]}]
        },
        "model.overrides.convs_per_stage": {"int": [1, 2]},
        "model.overrides.dropout": {"float": [0.0, 0.5, 0.1]},
    },
    "cnn-small": {  # a few thousand parameters: quick trials
        "model.overrides.filters": {"choice": [[4, 8], [8, 8], [8, 16]]},
        "model.overrides.dropout": {"choice": [0.0, 0.25]},
    },
}


@register(
    "cnn",
    task="classification",
    input_shape=(28, 28, 1),
    citation="LeCun et al. 1998; keras-io examples/vision/mnist_convnet.py; "
    "Ioffe & Szegedy 2015 (batch_norm)",
    tiny={"filters": (4, 8), "dropout": 0.0},
)
def cnn(
    input_shape=(28, 28, 1),
    num_classes=10,
    filters=(32, 64),
    kernel_size=3,
    convs_per_stage=1,
    batch_norm=False,
    padding="valid",
    dropout=0.5,
    classifier_activation="softmax",
    name="cnn",
):
    """Conv-pool stages (one conv each by default), dropout, and a dense softmax classifier."""
    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, f in enumerate(filters, start=1):
        for j in range(1, convs_per_stage + 1):
            conv = f"conv{i}" if convs_per_stage == 1 else f"conv{i}_{j}"
            if batch_norm:
                x = layers.Conv2D(f, kernel_size, padding=padding, use_bias=False, name=conv)(x)
                x = layers.BatchNormalization(name=f"{conv}_bn")(x)
                x = layers.Activation("relu", name=f"{conv}_relu")(x)
            else:
                x = layers.Conv2D(f, kernel_size, padding=padding, activation="relu", name=conv)(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=name)

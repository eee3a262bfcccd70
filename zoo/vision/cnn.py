"""The classic small convnet (keras-io mnist_convnet): conv-pool-conv-pool-dropout-dense.

Raw pixels in (0..255, any HxWxC), class probabilities out; rescaling is part of the graph so an
exported model takes images as they come. The defaults build keras-io's model exactly; the `cnn`
recipe adds batch normalization (conv-BN-ReLU, the conv without its bias) and a second conv per
stage.
"""

import keras
from keras import layers

from zoo.registry import register


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

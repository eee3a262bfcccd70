"""The classic small convnet (keras-io mnist_convnet): conv-pool-conv-pool-dropout-dense.

Raw pixels in (0..255, any HxWxC), class probabilities out; rescaling is part of the graph so an
exported model takes images as they come.
"""

import keras
from keras import layers

from zoo.registry import register


@register(
    "cnn",
    task="classification",
    input_shape=(28, 28, 1),
    citation="LeCun et al. 1998; keras-io examples/vision/mnist_convnet.py",
    tiny={"filters": (4, 8), "dropout": 0.0},
)
def cnn(
    input_shape=(28, 28, 1),
    num_classes=10,
    filters=(32, 64),
    kernel_size=3,
    dropout=0.5,
    classifier_activation="softmax",
    name="cnn",
):
    """Two conv-pool stages, dropout, and a dense softmax classifier."""
    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(f, kernel_size, activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=name)

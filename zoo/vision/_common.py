"""Pieces the image families share: the channel axis, the `pooling` check, ImageNet input
normalization, the filter rounding of MobileNet/EfficientNet, and the pooled classifier head.

Each helper names its layers itself (`rescale`, `normalize`, `avg_pool`, `max_pool`, `top_dropout`,
`predictions`), the names keras.applications uses, so checkpoints still map by name.
"""

import keras
from keras import layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications' "caffe" preprocessing, 0..255


def channel_axis():
    """The channels axis of an image batch: 1 for channels_first, -1 for channels_last."""
    return 1 if keras.config.image_data_format() == "channels_first" else -1


def check_pooling(pooling, allowed=(None, "avg", "max")):
    """Raise a ValueError unless `pooling` is one of `allowed`."""
    if pooling not in allowed:
        names = ", ".join(map(repr, allowed[:-1])) + f" or {allowed[-1]!r}"
        raise ValueError(f"pooling must be {names}, got {pooling!r}")


PREPROCESSING = ("torch", "caffe", "tf")


@keras.saving.register_keras_serializable(package="zoo")
class ReverseChannels(layers.Layer):
    """RGB -> BGR (the channel order of caffe-style weights)."""

    def call(self, x):
        return keras.ops.flip(x, axis=channel_axis())


def imagenet_normalize(inputs, mode="torch"):
    """Raw pixels (0..255) in; the input scaling the weights were trained with:

    - "torch" (the zoo's): 0..1 (`rescale`), then ImageNet mean/std (`normalize`); a one-channel
      (grey) input is normalized by the mean of the three means and of the three deviations;
    - "caffe" (keras.applications' ResNet50 and VGG): BGR (`to_bgr`), minus the ImageNet mean
      in 0..255 (`normalize`);
    - "tf" (keras.applications' MobileNet, Inception): -1..1 (`rescale`).
    """
    if mode not in PREPROCESSING:
        raise ValueError(f"preprocessing must be one of {', '.join(PREPROCESSING)}, got {mode!r}")
    if mode == "tf":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    if mode == "caffe":
        x = inputs if inputs.shape[channel_axis()] == 1 else ReverseChannels(name="to_bgr")(inputs)
        mean = list(CAFFE_MEAN_BGR)
        if inputs.shape[channel_axis()] == 1:
            mean = [sum(mean) / 3]
        return layers.Normalization(
            axis=channel_axis(), mean=mean, variance=[1.0] * len(mean), name="normalize"
        )(x)
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if inputs.shape[channel_axis()] == 1:
        mean, std = [sum(mean) / 3], [sum(std) / 3]
    return layers.Normalization(
        axis=channel_axis(), mean=mean, variance=[s**2 for s in std], name="normalize"
    )(x)


def make_divisible(v, divisor=8):
    """Round a filter count to a multiple of 8, never losing more than 10%."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def pool(x, pooling):
    """Global pooling of a feature map: "avg" (`avg_pool`), "max" (`max_pool`) or None (none)."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def classifier(
    x, num_classes, classifier_activation, dropout=None, kernel_initializer="glorot_uniform"
):
    """Dropout (`top_dropout`, left out when `dropout` is None), then the `predictions` Dense.

    The Dense computes in float32, so a mixed-precision model still gives float32 probabilities.
    """
    if dropout is not None:
        x = layers.Dropout(dropout, name="top_dropout")(x)
    return layers.Dense(
        num_classes, activation=classifier_activation, kernel_initializer=kernel_initializer,
        dtype="float32", name="predictions",
    )(x)  # fmt: skip


def head(
    x, num_classes, include_top, pooling, classifier_activation, dropout=None,
    kernel_initializer="glorot_uniform",
):  # fmt: skip
    """The usual top of a convnet: with `include_top`, global average pooling (`avg_pool`) and the
    classifier; without it, the feature map pooled as `pooling` says."""
    if include_top:
        x = pool(x, "avg")
        return classifier(x, num_classes, classifier_activation, dropout, kernel_initializer)
    return pool(x, pooling)

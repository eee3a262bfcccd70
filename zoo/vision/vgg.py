"""VGG-11 and VGG-16 (Simonyan & Zisserman 2015): stacks of 3x3 convs, five max-pools, three FCs.

Raw pixels in (0..255), class probabilities out; rescaling and ImageNet mean/std normalization are
layers of the graph. Layer names are keras.applications' (`block1_conv1`, `block1_pool`, `fc1`,
`fc2`, `predictions`), so VGG-16's parameter count and weight shapes equal
keras.applications.VGG16's. The paper's dropout (0.5) after fc1 and fc2 is here (it has no
weights; keras.applications leaves it out).

There is no `cifar_stem`: VGG has no stem to change. Every conv is 3x3 stride 1, so a 32x32 image
goes through the five 2x2 pools to 1x1x512, and the classifier follows (the usual CIFAR VGG, with
smaller `fc_units`). `batch_norm=True` puts BatchNormalization between each conv and its ReLU
(torchvision's `vgg16_bn` less the conv biases that BN makes redundant; named
`block1_conv1_bn`), which lets VGG train from scratch at SGD
learning rates near 0.1.
"""

import keras
from keras import layers

from zoo.registry import register
from zoo.vision._common import channel_axis, check_pooling, classifier, imagenet_normalize, pool

CITATION = (
    "Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image Recognition. "
    "ICLR 2015"
)
TINY = {"input_shape": (32, 32, 3), "num_classes": 10, "width": 8, "fc_units": 32}


def _vgg(
    convs_per_block,
    width,
    fc_units,
    dropout,
    batch_norm,
    input_shape,
    num_classes,
    include_top,
    pooling,
    classifier_activation,
    name,
    preprocessing="torch",
):
    """Five blocks of `convs_per_block[i]` 3x3 convs (width * 1, 2, 4, 8, 8 filters) + max-pool."""
    check_pooling(pooling)
    axis = channel_axis()
    inputs = keras.Input(shape=input_shape, name="images")
    x = imagenet_normalize(inputs, preprocessing)

    for b, num_convs in enumerate(convs_per_block, start=1):
        filters = width * min(2 ** (b - 1), 8)
        for c in range(1, num_convs + 1):
            conv = f"block{b}_conv{c}"
            if batch_norm:  # conv (its bias is the BN's beta) -> BN -> ReLU
                x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=conv)(x)
                x = layers.BatchNormalization(axis=axis, name=f"{conv}_bn")(x)
                x = layers.Activation("relu", name=f"{conv}_relu")(x)
            else:
                x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=conv)(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x)

    if include_top:
        x = layers.Flatten(name="flatten")(x)
        for i in (1, 2):
            x = layers.Dense(fc_units, activation="relu", name=f"fc{i}")(x)
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        x = classifier(x, num_classes, classifier_activation)
    else:
        x = pool(x, pooling)
    return keras.Model(inputs, x, name=name)


@register("vgg11", task="classification", input_shape=(224, 224, 3), citation=CITATION, tiny=TINY)
def vgg11(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    width=64,
    fc_units=4096,
    dropout=0.5,
    batch_norm=False,
    name="vgg11",
    preprocessing="torch",
):
    """VGG-11 (configuration A): 1, 1, 2, 2, 2 convs per block, 132.9M parameters.

    `width` is the first block's filter count (64), `fc_units` the width of fc1 and fc2 (4096),
    `batch_norm=True` the `_bn` variant. `preprocessing="caffe"` takes keras.applications'
    weights (the same layer names: `--set model.init_from=vgg16_weights_..._notop.h5`).
    """
    return _vgg(
        (1, 1, 2, 2, 2), width, fc_units, dropout, batch_norm, input_shape, num_classes,
        include_top, pooling, classifier_activation, name, preprocessing,
    )  # fmt: skip


@register("vgg16", task="classification", input_shape=(224, 224, 3), citation=CITATION, tiny=TINY)
def vgg16(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    width=64,
    fc_units=4096,
    dropout=0.5,
    batch_norm=False,
    name="vgg16",
    preprocessing="torch",
):
    """VGG-16 (configuration D): 2, 2, 3, 3, 3 convs per block, 138.4M parameters.

    Arguments as for vgg11.
    """
    return _vgg(
        (2, 2, 3, 3, 3), width, fc_units, dropout, batch_norm, input_shape, num_classes,
        include_top, pooling, classifier_activation, name, preprocessing,
    )  # fmt: skip

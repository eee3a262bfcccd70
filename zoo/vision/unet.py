"""U-Net (Ronneberger et al. 2015): a contracting path of conv blocks and max-pools, an expanding
path of up-convolutions, each joined to the contracting path's feature map of the same size.

Raw pixels in (0..255, any HxWxC with H and W divisible by 2^depth), per-pixel class
probabilities out at the input's resolution ([H,W,num_classes], softmax). The paper's convolutions
are unpadded and its output smaller than its input (tiles stitched with overlap); here they are
"same"-padded, as in most later uses, so the output covers the input pixel for pixel. `depth`
pooling steps (the paper: 4) and `filters` at the first level (the paper: 64), doubled at each
level down; `batch_norm` after each conv (not in the paper) trains faster from scratch.
Its BatchNormalization layers average their statistics with momentum 0.9, not Keras' 0.99: in
runs of a few hundred steps, 0.99's moving averages still remember the first steps' activations,
and the model in inference mode scored half its training-mode mean IoU (0.12 against 0.28 after
300 steps on digit scenes; 0.26 against 0.28 with 0.9).
`output_bias` starts the classifier's biases at given values, e.g. the log class frequencies, so
that training does not spend its first hundreds of steps learning that most pixels are background
(the prior initialization of Lin et al. 2017).
"""

import keras
from keras import layers

from zoo.registry import register


def _block(x, filters, batch_norm, name, momentum=0.9):
    for j in (1, 2):
        conv = f"{name}_conv{j}"
        if batch_norm:
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=conv)(x)
            x = layers.BatchNormalization(momentum=momentum, name=f"{conv}_bn")(x)
            x = layers.Activation("relu", name=f"{conv}_relu")(x)
        else:
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=conv)(x)
    return x


@register(
    "unet",
    task="segmentation",
    input_shape=(128, 128, 1),
    citation="Ronneberger, Fischer & Brox 2015, U-Net: Convolutional Networks for Biomedical "
    "Image Segmentation",
    tiny={"depth": 2, "filters": 4},
)
def unet(
    input_shape=(128, 128, 1),
    num_classes=11,
    depth=4,
    filters=64,
    batch_norm=True,
    dropout=0.0,
    output_bias=None,
    name="unet",
):
    """Encoder-decoder with skip connections; per-pixel class probabilities."""
    if input_shape[0] % 2**depth or input_shape[1] % 2**depth:
        raise ValueError(
            f"unet: input height and width {input_shape[:2]} must be divisible by 2^depth = "
            f"{2**depth}"
        )
    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    skips = []
    for level in range(depth):
        x = _block(x, filters * 2**level, batch_norm, f"down{level + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    x = _block(x, filters * 2**depth, batch_norm, "bottom")
    if dropout:
        x = layers.Dropout(dropout, name="bottom_dropout")(x)
    for level in reversed(range(depth)):
        width = filters * 2**level
        x = layers.Conv2DTranspose(width, 2, strides=2, name=f"up{level + 1}_upconv")(x)
        x = layers.Concatenate(name=f"up{level + 1}_concat")([skips[level], x])
        x = _block(x, width, batch_norm, f"up{level + 1}")
    bias = "zeros" if output_bias is None else keras.initializers.Constant(list(output_bias))
    outputs = layers.Conv2D(
        num_classes,
        1,
        activation="softmax",
        bias_initializer=bias,
        dtype="float32",
        name="predictions",
    )(x)
    return keras.Model(inputs, outputs, name=name)

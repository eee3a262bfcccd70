"""A convolutional autoencoder (keras-io examples/vision/autoencoder.py, with a dense code).

`images` (0..255, float) -> `reconstruction` (0..255, float32), through two nested functional
models reachable by name:

- `model.get_layer("encoder")`: images -> `code` [B, code_dim] (float32). Rescale to [0, 1], one
  stride-2 Conv2D + ReLU per entry of `filters`, flatten, Dense.
- `model.get_layer("decoder")`: `code` -> images 0..255 (float32). Dense, reshape, one stride-2
  Conv2DTranspose + ReLU per stage (widths in reverse), a 3x3 Conv2D with a sigmoid, times 255.

The model returns a dict {"reconstruction": ...}; a task compiles or computes its loss on that key
(e.g. mean squared error against the input pixels). A denoising autoencoder is the same model fed
noisy images with clean targets: the noise belongs to the data pipeline, not the graph.
Height and width must be divisible by 2 ** len(filters).
"""

import keras
from keras import layers

from zoo.registry import register


def downsampled_size(input_shape, stages):
    """(height, width) after `stages` stride-2 convolutions; the decoder must invert them."""
    height, width = int(input_shape[0]), int(input_shape[1])
    factor = 2**stages
    if height % factor or width % factor:
        raise ValueError(
            f"image shape {tuple(input_shape)}: height and width must be divisible by "
            f"{factor} for {stages} stride-2 stages"
        )
    return height // factor, width // factor


@register(
    "autoencoder",
    task="autoencoder",
    input_shape=(28, 28, 1),
    citation="Hinton & Salakhutdinov 2006; Masci et al. 2011 (convolutional autoencoders); "
    "keras-io examples/vision/autoencoder.py",
    tiny={"filters": (4, 8), "code_dim": 8},
)
def autoencoder(input_shape=(28, 28, 1), filters=(32, 64), code_dim=32, name="autoencoder"):
    """Convolutional encoder to a dense code, mirrored transposed-conv decoder, pixels out."""
    base_h, base_w = downsampled_size(input_shape, len(filters))

    images = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(1.0 / 255, name="encoder_rescale")(images)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(
            f, 3, strides=2, padding="same", activation="relu", name=f"encoder_block{i}_conv"
        )(x)
    x = layers.Flatten(name="encoder_flatten")(x)
    code = layers.Dense(code_dim, dtype="float32", name="encoder_code")(x)
    encoder = keras.Model(images, code, name="encoder")

    code_in = keras.Input(shape=(code_dim,), name="code")
    x = layers.Dense(base_h * base_w * filters[-1], activation="relu", name="decoder_project")(
        code_in
    )
    x = layers.Reshape((base_h, base_w, filters[-1]), name="decoder_reshape")(x)
    for i, f in enumerate(reversed(filters), start=1):
        x = layers.Conv2DTranspose(
            f, 3, strides=2, padding="same", activation="relu", name=f"decoder_block{i}_deconv"
        )(x)
    x = layers.Conv2D(
        input_shape[-1],
        3,
        padding="same",
        activation="sigmoid",
        dtype="float32",
        name="decoder_to_image",
    )(x)
    pixels = layers.Rescaling(255.0, dtype="float32", name="decoder_to_pixels")(x)
    decoder = keras.Model(code_in, pixels, name="decoder")

    inputs = keras.Input(shape=input_shape, name="images")
    reconstruction = layers.Identity(dtype="float32", name="reconstruction")(
        decoder(encoder(inputs))
    )
    return keras.Model(inputs, {"reconstruction": reconstruction}, name=name)

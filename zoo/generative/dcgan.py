"""DCGAN (Radford et al. 2016): a convolutional generator and discriminator, as one model.

`dcgan` is one functional model holding two nested functional models, reachable by name:

- `model.get_layer("generator")`: `latent` [B, latent_dim] -> images [B, H, W, C] in pixel space
  (0..255, float32). Dense projection -> reshape to a small base map -> BatchNorm + ReLU, then
  stride-2 Conv2DTranspose + BatchNorm + ReLU stages, then a stride-2 Conv2DTranspose with tanh,
  rescaled from [-1, 1] to 0..255 inside the graph so that exported samples are pixel images.
- `model.get_layer("discriminator")`: images [B, H, W, C] (0..255) -> one logit [B, 1], float32.
  Rescaled to [-1, 1] inside, then stride-2 Conv2D + LeakyReLU(0.2) stages (BatchNorm on all but
  the first), flatten, Dense(1).

The combined model takes `latent` and `images` and returns a dict: `generated` = generator(latent),
`real_score` = discriminator(images), `fake_score` = discriminator(generated). A GAN task trains the
two halves with their own optimizers on `get_layer(...).trainable_weights`.

The number of stride-2 stages follows from the image size: halve while both sides stay even and
the half is at least 4 pixels (28 -> 7: two stages; 32 -> 4: three; 64 -> 4: four). Widths double
at each stage away from the image, as in the paper's 64x64 model (PyTorch example: ngf = ndf = 64).
Kernels are 4x4 and weights start from N(0, 0.02), as in the paper.
"""

import keras
from keras import layers

from zoo.registry import register


def upsampling_plan(input_shape, min_size=4):
    """(number of stride-2 stages, base height, base width) for images of `input_shape`."""
    height, width = int(input_shape[0]), int(input_shape[1])
    stages = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= min_size:
        height, width, stages = height // 2, width // 2, stages + 1
    if stages == 0:
        raise ValueError(
            f"image shape {tuple(input_shape)} cannot be reached by stride-2 upsampling: "
            f"height and width must be even and at least {2 * min_size}"
        )
    return stages, height, width


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def build_generator(input_shape, latent_dim, width, name="generator"):
    """`latent` -> images in 0..255 (float32): project, reshape, Conv2DTranspose stages, tanh."""
    stages, base_h, base_w = upsampling_plan(input_shape)
    base_filters = width * 2 ** (stages - 1)
    latent = keras.Input(shape=(latent_dim,), name="latent")
    x = layers.Dense(
        base_h * base_w * base_filters,
        use_bias=False,
        kernel_initializer=_init(),
        name=f"{name}_project",
    )(latent)
    x = layers.Reshape((base_h, base_w, base_filters), name=f"{name}_reshape")(x)
    x = layers.BatchNormalization(name=f"{name}_project_bn")(x)
    x = layers.ReLU(name=f"{name}_project_relu")(x)
    for i in range(1, stages):
        prefix = f"{name}_block{i}"
        x = layers.Conv2DTranspose(
            width * 2 ** (stages - 1 - i),
            4,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=_init(),
            name=f"{prefix}_deconv",
        )(x)
        x = layers.BatchNormalization(name=f"{prefix}_bn")(x)
        x = layers.ReLU(name=f"{prefix}_relu")(x)
    x = layers.Conv2DTranspose(
        input_shape[-1],
        4,
        strides=2,
        padding="same",
        activation="tanh",
        kernel_initializer=_init(),
        dtype="float32",
        name=f"{name}_to_image",
    )(x)
    images = layers.Rescaling(127.5, offset=127.5, dtype="float32", name=f"{name}_to_pixels")(x)
    return keras.Model(latent, images, name=name)


def build_discriminator(input_shape, width, norm="batch", name="discriminator"):
    """Images 0..255 -> one logit (float32): rescale to [-1, 1], strided Conv2D stages, Dense(1).

    `norm`: "batch" (DCGAN), "layer" (WGAN-GP: per-sample statistics over H, W, C with per-channel
    scale and offset, i.e. GroupNormalization with one group), or None. Never on the first stage.
    """
    if norm not in ("batch", "layer", None):
        raise ValueError(f"norm must be 'batch', 'layer' or None, got {norm!r}")
    stages, _, _ = upsampling_plan(input_shape)
    images = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{name}_rescale")(images)
    for i in range(1, stages + 1):
        prefix = f"{name}_block{i}"
        normalized = norm is not None and i > 1
        x = layers.Conv2D(
            width * 2 ** (i - 1),
            4,
            strides=2,
            padding="same",
            use_bias=not normalized,
            kernel_initializer=_init(),
            name=f"{prefix}_conv",
        )(x)
        if normalized and norm == "batch":
            x = layers.BatchNormalization(name=f"{prefix}_bn")(x)
        elif normalized:
            x = layers.GroupNormalization(groups=1, name=f"{prefix}_ln")(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"{prefix}_lrelu")(x)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    score = layers.Dense(1, kernel_initializer=_init(), dtype="float32", name=f"{name}_score")(x)
    return keras.Model(images, score, name=name)


def build_adversarial_model(generator, discriminator, name):
    """One model over both halves: {generated, real_score, fake_score} from (latent, images)."""
    latent = keras.Input(shape=generator.input_shape[1:], name="latent")
    images = keras.Input(shape=discriminator.input_shape[1:], name="images")
    generated = generator(latent)
    # Identity layers give each output its own name (`model.output_names`, export signatures).
    outputs = {
        "generated": layers.Identity(dtype="float32", name="generated")(generated),
        "real_score": layers.Identity(dtype="float32", name="real_score")(discriminator(images)),
        "fake_score": layers.Identity(dtype="float32", name="fake_score")(discriminator(generated)),
    }
    # A list of inputs: the model takes [latent, images] or a dict keyed by input name.
    return keras.Model([latent, images], outputs, name=name)


@register(
    "dcgan",
    task="gan",
    input_shape=(28, 28, 1),
    citation="Radford, Metz & Chintala 2016 (arXiv:1511.06434); "
    "keras-io examples/generative/dcgan_overriding_train_step.py",
    tiny={"latent_dim": 8, "generator_width": 4, "discriminator_width": 4},
)
def dcgan(
    input_shape=(28, 28, 1),
    latent_dim=100,
    generator_width=64,
    discriminator_width=64,
    name="dcgan",
):
    """DCGAN: a transposed-conv generator and a strided-conv discriminator with BatchNorm."""
    generator = build_generator(input_shape, latent_dim, generator_width, name="generator")
    discriminator = build_discriminator(
        input_shape, discriminator_width, norm="batch", name="discriminator"
    )
    return build_adversarial_model(generator, discriminator, name=name)

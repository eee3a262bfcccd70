"""Self-supervised image encoders: any zoo classifier without its head, with SimCLR's projection
MLP (`simclr`), SimSiam's projector and predictor (`simsiam`), or the projection MLP and SwAV's
learned prototypes (`swav`) on top.

The encoder is the backbone classifier cut at its head: the tensor that enters its `predictions`
Dense, before any dropout (the cnn's `flatten`, a convnet's global-pooled last feature map, the
ViT's class token). Its layers keep the backbone's names (`conv1_1`, `conv1_1_bn`, ...), in one
flat functional graph rather than a nested model, so that a classifier trained later can start
from the pretrained encoder by layer name (`--set model.init_from=runs/simclr-digits`), and the
exported encoder is just the `embedding` output.

Outputs, a dict: `embedding` (float32: what the exports serve and what the linear probe and k-NN
read; the encoder's output, or with `embed_depth=d` the output of the projection head's d-th hidden
layer, SimCLRv2's choice: Chen et al. 2020b, section 2, keep the head's first layer when labels
are few), `projection` (the MLP the contrastive loss sees; SimCLR's Chen et al. 2020
section 4.2: the loss is computed on it, the representation kept is the layer before), and for
SimSiam `prediction` (the predictor's output), for SwAV `scores` (the projection's cosine
similarity to each prototype). Raw pixels in (0..255), as the backbone takes.

Every BatchNormalization (the backbone's too) keeps its moving statistics with
`batch_norm_momentum` (default 0.9, not Keras' 0.99): the encoder is scored in inference mode
after every epoch, and pretraining runs on a CPU are a few hundred steps, where 0.99's averages
still remember their initial values (simclr-digits after 62 steps: validation k-NN below the
random encoder's while the training loss fell).
"""

import keras
from keras import layers

from zoo.registry import build, get_spec, register


def encoder(backbone, input_shape, backbone_tiny=False, **overrides):
    """(images input, embedding tensor) of the zoo classifier `backbone` without its head."""
    spec = get_spec(backbone)
    if spec.task != "classification":
        raise ValueError(f"backbone {backbone!r} is not a zoo image classifier")
    classifier = build(backbone, tiny=backbone_tiny, input_shape=tuple(input_shape), **overrides)
    try:
        head = classifier.get_layer("predictions")
    except ValueError:
        raise ValueError(f"backbone {backbone!r} has no `predictions` layer to cut") from None
    x = head.input
    while isinstance(x._keras_history.operation, layers.Dropout):
        x = x._keras_history.operation.input
    if len(x.shape) != 2:
        raise ValueError(f"backbone {backbone!r}: the head's input is not a vector ({x.shape})")
    return classifier.inputs[0], x


def mlp(x, dims, batch_norm, prefix, last_batch_norm=False, hidden=None):
    """Dense layers `dims` with BatchNormalization and ReLU between them (`<prefix>_dense<i>`,
    `<prefix>_bn<i>`, `<prefix>_relu<i>`); the last one linear, normalized (without a scale or
    offset) only if `last_batch_norm` (SimSiam's projector). `hidden`, a list, receives the
    output of each hidden layer (after its ReLU)."""
    for i, dim in enumerate(dims, start=1):
        last = i == len(dims)
        norm = batch_norm and (not last or last_batch_norm)
        x = layers.Dense(dim, use_bias=not norm, name=f"{prefix}_dense{i}")(x)
        if norm:
            affine = not last
            x = layers.BatchNormalization(
                center=affine, scale=affine, name=f"{prefix}_bn{i}"
            )(x)  # fmt: skip
        if not last:
            x = layers.Activation("relu", name=f"{prefix}_relu{i}")(x)
            if hidden is not None:
                hidden.append(x)
    return x


@keras.saving.register_keras_serializable(package="zoo")
class Prototypes(layers.Layer):
    """SwAV's prototypes: the cosine similarity of each (projection) vector to each of `count`
    learned unit vectors, [N, count]. The prototypes are normalized where they are used (weight
    normalization), so no step has to renormalize them after an update as SwAV's code does."""

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)
        if self.count < 1:
            raise ValueError(f"prototypes={count}: expected at least 1")

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.count), initializer="glorot_uniform", name="kernel"
        )

    def call(self, x):
        x = keras.ops.normalize(x, axis=-1)
        return keras.ops.matmul(x, keras.ops.normalize(self.kernel, axis=0))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.count)

    def get_config(self):
        return {**super().get_config(), "count": self.count}


def _ssl(
    backbone, backbone_overrides, backbone_tiny, input_shape, projection_dims, predictor_dims,
    batch_norm, batch_norm_momentum, embed_depth, name, prototypes=0,
):  # fmt: skip
    inputs, features = encoder(backbone, input_shape, backbone_tiny, **dict(backbone_overrides))
    if not 0 <= embed_depth < len(projection_dims):
        raise ValueError(
            f"embed_depth={embed_depth}: the projection head has {len(projection_dims) - 1} "
            "hidden layers"
        )
    hidden = [features]
    last_bn = bool(predictor_dims)
    z = mlp(features, projection_dims, batch_norm, "projection", last_bn, hidden)
    embedding = layers.Activation("linear", dtype="float32", name="embedding")(hidden[embed_depth])
    outputs = {"embedding": embedding}
    outputs["projection"] = layers.Activation("linear", dtype="float32", name="projection_out")(z)
    if predictor_dims:
        p = mlp(z, predictor_dims, batch_norm, "predictor")
        outputs["prediction"] = layers.Activation("linear", dtype="float32", name="prediction")(p)
    if prototypes:
        scores = Prototypes(prototypes, name="prototypes")(z)
        outputs["scores"] = layers.Activation("linear", dtype="float32", name="scores")(scores)
    model = keras.Model(inputs, outputs, name=name)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = batch_norm_momentum
    return model


@register(
    "simclr",
    task="embedding",
    input_shape=(28, 28, 1),
    citation="Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual "
    "Representations (SimCLR)",
    tiny={"backbone_tiny": True, "projection_dims": (16, 8)},
)
def simclr(
    input_shape=(28, 28, 1),
    backbone="cnn",
    backbone_overrides=None,
    backbone_tiny=False,
    projection_dims=(256, 128),
    batch_norm=True,
    batch_norm_momentum=0.9,
    embed_depth=0,
    name="simclr",
):
    """A zoo backbone without its head and a projection MLP, for the NT-Xent loss."""
    return _ssl(
        backbone, backbone_overrides or {}, backbone_tiny, input_shape, projection_dims, (),
        batch_norm, batch_norm_momentum, embed_depth, name,
    )  # fmt: skip


@register(
    "simsiam",
    task="embedding",
    input_shape=(28, 28, 1),
    citation="Chen & He 2021, Exploring Simple Siamese Representation Learning (SimSiam)",
    tiny={"backbone_tiny": True, "projection_dims": (16, 16), "predictor_dims": (8, 16)},
)
def simsiam(
    input_shape=(28, 28, 1),
    backbone="cnn",
    backbone_overrides=None,
    backbone_tiny=False,
    projection_dims=(256, 256),
    predictor_dims=(64, 256),
    batch_norm=True,
    batch_norm_momentum=0.9,
    embed_depth=0,
    name="simsiam",
):
    """A zoo backbone without its head, a projector (its output batch-normalized) and a
    bottleneck predictor, for the negative-cosine loss with a stop-gradient."""
    return _ssl(
        backbone, backbone_overrides or {}, backbone_tiny, input_shape, projection_dims,
        predictor_dims, batch_norm, batch_norm_momentum, embed_depth, name,
    )  # fmt: skip


@register(
    "swav",
    task="embedding",
    input_shape=(28, 28, 1),
    citation="Caron et al. 2020, Unsupervised Learning of Visual Features by Contrasting Cluster "
    "Assignments (SwAV)",
    tiny={"backbone_tiny": True, "projection_dims": (16, 8), "prototypes": 10},
)
def swav(
    input_shape=(28, 28, 1),
    backbone="cnn",
    backbone_overrides=None,
    backbone_tiny=False,
    projection_dims=(512, 128),
    prototypes=10,
    batch_norm=True,
    batch_norm_momentum=0.9,
    embed_depth=0,
    name="swav",
):
    """A zoo backbone without its head, SimCLR's projection MLP and `prototypes` learned
    prototype vectors (`scores`: each projection's cosine similarity to each), for SwAV's
    swapped prediction of cluster assignments."""
    return _ssl(
        backbone, backbone_overrides or {}, backbone_tiny, input_shape, projection_dims, (),
        batch_norm, batch_norm_momentum, embed_depth, name, prototypes,
    )  # fmt: skip

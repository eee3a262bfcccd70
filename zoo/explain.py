"""What a classifier exposes to explanation methods (saliency/): the target layer whose feature
map Grad-CAM weighs, and a sub-model that returns that layer's activations together with the
class scores before the softmax. Pure Keras (keras.ops), like the rest of the zoo.

The target layer, found automatically (`find_target(model)`):

- convnets (cnn, resnet*, vgg*, mobilenet*, efficientnet, inception, googlenet): the last layer
  with a 4-D (spatial) output before the global pooling / flatten. A pooling layer there is
  stepped over to the map it pools (the same features, finer): `conv2_2_relu` rather than `pool2`
  in the cnn, `block5_conv3` rather than `block5_pool` in VGG, `conv5_block2_out` in ResNet-18.
- ViT: no convolutional map after the patch embedding, so Grad-CAM works on the patch tokens
  entering the last attention layer (`encoder_block<depth>_ln1`), reshaped to the patch grid
  without the class token (as pytorch-grad-cam does for ViTs). The class token reads the patch
  tokens only through attention, so the tokens after the last block (`encoder_norm`) carry no
  gradient from it.

`find_target(model, "conv1_2")` overrides it with any layer that has a 4-D output, or a 3-D
token output whose length is the patch grid (plus leading tokens).

Class scores: when the model ends in a Dense with an activation (the zoo's `predictions`), or in
an Activation layer, the scores are its pre-activation logits (gradients of softmax probabilities
vanish as the model grows confident); otherwise the model's own outputs.
"""

import dataclasses

import keras
from keras import layers, ops

POOLING = (layers.MaxPooling2D, layers.AveragePooling2D)


@dataclasses.dataclass(frozen=True)
class Target:
    """A layer whose output Grad-CAM reads as a feature map."""

    layer: str
    grid: tuple  # (rows, cols) of the map
    tokens: bool = False  # (batch, tokens, width): leading `skip` tokens, then the grid row-major
    skip: int = 0
    channels_first: bool = False

    def feature_map(self, x):
        """The layer's output (or a gradient of it) as (batch, rows, cols, channels)."""
        if self.tokens:
            return ops.reshape(x[:, self.skip :, :], (-1, *self.grid, x.shape[-1]))
        return ops.transpose(x, (0, 2, 3, 1)) if self.channels_first else x


def _rank(layer):
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):  # an unused layer, or one called more than once
        return None


def _producer(tensor):
    return tensor._keras_history.operation


def _grid(shape, channels_first):
    return tuple(shape[2:4]) if channels_first else tuple(shape[1:3])


def find_target(model, layer=None) -> Target:
    """The target layer of `model` (named by `layer`, else found as the module docstring says).
    ValueError for a name the model lacks or a layer whose output is no feature map."""
    channels_first = keras.config.image_data_format() == "channels_first"
    order = list(model.layers)
    if layer is not None:
        names = [candidate.name for candidate in order]
        if layer not in names:
            maps = [c.name for c in order if _rank(c) in (3, 4)]
            raise ValueError(
                f"no layer {layer!r} in model {model.name!r} (layers with a feature map, last "
                f"ones: {', '.join(maps[-6:]) or 'none'})"
            )
        chosen = order[names.index(layer)]
        rank = _rank(chosen)
        if rank == 4:
            return _spatial(chosen, channels_first)
        if rank == 3:
            return _tokens(order, order.index(chosen), channels_first)
        shape = getattr(chosen, "output", None)
        raise ValueError(
            f"layer {layer!r} outputs {shape.shape if shape is not None else 'nothing'}: not a "
            "feature map (batch, rows, cols, channels) nor patch tokens (batch, tokens, width)"
        )
    spatial = [i for i, candidate in enumerate(order) if _rank(candidate) == 4]
    if not spatial:
        raise ValueError(f"model {model.name!r} has no layer with a spatial (4-D) output")
    last = spatial[-1]
    attention = [
        i for i in range(last + 1, len(order)) if isinstance(order[i], layers.MultiHeadAttention)
    ]
    if attention:  # a transformer over patches: the tokens entering the last attention layer
        query = order[attention[-1]]._inbound_nodes[0].input_tensors[0]
        return _tokens(order, order.index(_producer(query)), channels_first)
    chosen = order[last]
    while isinstance(chosen, POOLING):
        chosen = _producer(chosen.input)
    return _spatial(chosen, channels_first)


def _spatial(layer, channels_first) -> Target:
    grid = _grid(layer.output.shape, channels_first)
    return Target(layer.name, grid, channels_first=channels_first)


def _tokens(order, index, channels_first) -> Target:
    """A (batch, tokens, width) layer read on the grid of the last 4-D layer before it."""
    chosen = order[index]
    maps = [c for c in order[:index] if _rank(c) == 4]
    tokens = chosen.output.shape[1]
    if not maps or tokens is None:
        raise ValueError(f"layer {chosen.name!r} has tokens but no patch grid precedes it")
    grid = _grid(maps[-1].output.shape, channels_first)
    skip = tokens - grid[0] * grid[1]
    if skip < 0:
        raise ValueError(
            f"layer {chosen.name!r} has {tokens} tokens, fewer than the {grid[0]}x{grid[1]} grid "
            f"of {maps[-1].name!r}"
        )
    return Target(chosen.name, grid, tokens=True, skip=skip, channels_first=channels_first)


class Explainable:
    """A classifier split for explanations: `explainable(images)` returns (the target layer's raw
    output, the class scores, the probabilities), all from one forward pass in inference mode.
    Gradients of a score with respect to the first are what Grad-CAM weighs; `target` reshapes
    them (and the activations) to (batch, rows, cols, channels)."""

    def __init__(self, model, layer=None):
        if len(model.outputs) != 1:
            raise ValueError(f"model {model.name!r} has {len(model.outputs)} outputs, not one")
        self.model = model
        self.target = find_target(model, layer)
        head = _producer(model.outputs[0])
        if isinstance(head, layers.Dense) and head.activation not in (
            None,
            keras.activations.linear,
        ):
            self._head, features = head, head.input
        elif isinstance(head, (layers.Activation, layers.Softmax)):
            self._head, features = head, head.input
        else:
            self._head, features = None, model.outputs[0]
        activations = model.get_layer(self.target.layer).output
        if len(model.inputs) != 1:
            raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs, not one image")
        inputs = model.inputs[0]
        self.split = keras.Model(inputs, [activations, features], name=f"{model.name}_split")
        self.image_shape = tuple(inputs.shape[1:])

    def __call__(self, images):
        activations, features = self.split(images, training=False)
        scores, probabilities = self.head(features)
        return activations, scores, probabilities

    def head(self, features):
        """(scores before the activation, probabilities) from the last layer's input."""
        features = ops.cast(features, "float32")
        head = self._head
        if head is None:
            return features, features
        if isinstance(head, layers.Dense):
            scores = ops.matmul(features, ops.cast(head.kernel, "float32"))
            if head.use_bias:
                scores = scores + ops.cast(head.bias, "float32")
            return scores, ops.cast(head.activation(scores), "float32")
        return features, ops.cast(head(features), "float32")

"""Feature levels of the zoo's convnets, the trunk that dense heads (DeepLabV3+, the detector's
feature pyramid) stand on.

`feature_levels("resnet50", (128, 128, 3), levels=(2, 5))` builds the registered classifier
without its top and returns a keras.Model from its `images` input to one feature map per level:
level L is the map 2^L times smaller than the input (C2 at stride 4 ... C5 at stride 32, the
naming of FPN, Lin et al. 2017) that the network steps down from: the shallowest tensor that a
layer halves into level L + 1, and for the deepest level the trunk's output. For the resnets that
is each stage's output (`conv2_block3_out` ... `conv5_block3_out`), for vgg the conv before each
pool, for mobilenet_v2 the expansion of the block that strides (`block14_expand_act` at C4, the
map DeepLab's MobileNetV2 variant takes). Global pooling (squeeze-excite) does not count
as a step. The levels are found from the layers' output shapes, so every zoo convnet serves
(resnet*, mobilenet_*, efficientnet_b0, vgg*) without each family keeping a list of layer names;
a backbone without a map at a level (ViT; inception's valid-padded stem) is refused with the
levels it has. `model.level_names` records the layers chosen, where a head is attached.
"""

import keras

from zoo.registry import build, get_spec


def feature_levels(backbone: str, input_shape, levels, **overrides) -> keras.Model:
    """The backbone's feature maps at `levels` (strides 2^level), outputs in that order."""
    spec = get_spec(backbone)
    if spec.task != "classification" or "include_top" not in spec.arguments():
        raise ValueError(f"backbone {backbone!r} is not a zoo convnet classifier")
    trunk = build(backbone, input_shape=tuple(input_shape), include_top=False, **overrides)

    def level(tensor):
        shape = tensor.shape
        if len(shape) != 4 or not shape[1] or input_shape[0] % shape[1]:
            return None
        stride = input_shape[0] // shape[1]
        return stride.bit_length() - 1 if stride & (stride - 1) == 0 else None

    found, depth = {}, {}  # level -> the tensor the network steps down from; layer -> depth
    for layer in trunk.layers:
        inputs = layer._inbound_nodes[0].input_tensors if layer._inbound_nodes else []
        parents = [t._keras_history.operation.name for t in inputs]
        depth[layer.name] = 1 + max((depth.get(p, 0) for p in parents), default=0)
        if len(inputs) != 1:
            continue
        before, after = level(inputs[0]), level(layer.output)
        if before is not None and after == before + 1:
            old = found.get(before)
            if old is None or depth[parents[0]] < depth[old._keras_history.operation.name]:
                found[before] = inputs[0]
    if level(trunk.output) is not None:
        found[level(trunk.output)] = trunk.output
    missing = [level for level in levels if level not in found]
    if missing:
        raise ValueError(
            f"backbone {backbone!r} at input {tuple(input_shape)} has no feature map at level(s) "
            f"{missing} (it has {sorted(found)}; level L = stride 2^L)"
        )
    chosen = [found[level] for level in levels]
    model = keras.Model(trunk.inputs, chosen, name=f"{backbone}_features")
    model.level_names = {
        level: tensor._keras_history.operation.name for level, tensor in zip(levels, chosen)
    }
    return model

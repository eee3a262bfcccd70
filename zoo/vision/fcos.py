"""FCOS (Tian et al. 2019): a one-stage, anchor-free object detector. A feature pyramid (FPN,
Lin et al. 2017) over a zoo backbone taken by name, and one head shared by every level that
predicts, at each location of each level, a score per class, the distances from the location to
the four sides of its object's box, and the location's "centerness".

Why FCOS rather than RetinaNet: it has no anchors, so none of RetinaNet's anchor sizes, aspect
ratios and IoU matching thresholds to retune for each data set (digits of 28-56 pixels, VOC's
objects); it predicts one box per location instead of nine, so the head, the decoding and the
NMS that the exported graph and the TFLite file run handle a ninth of the candidates; and its
target assignment ("inside the box, near its centre, within the level's size range") is a few
vectorized comparisons that run inside the training step. It keeps RetinaNet's focal loss for
the classes and trains the boxes with the GIoU loss (Rezatofighi et al. 2019), as later FCOS
versions do (with their centre sampling). The training side is in training/tasks/detection.py.

    images (raw pixels 0..255, [N,H,W,C])
      -> backbone feature maps C3..C5 (zoo.vision.backbones.feature_levels: any zoo convnet)
      -> FPN: 1x1 lateral convs, top-down sums, 3x3 output convs: P3..P5 (`fpn_p3` ...);
         P6, P7 by stride-2 convs on P5 when `levels` asks for them
      -> a head shared by the levels: `head_convs` 3x3 conv + GroupNorm + ReLU in a class tower
         and in a box tower (`cls_tower1_conv` ...), then `class_logits` (K per location, biases
         at the focal-loss prior 0.01), `box_distances` and `centerness_logits` on the box tower
      -> raw outputs, concatenated over the levels (level by level, rows then columns):
         `classes` [N,P,K] logits, `distances` [N,P,4] pixels (top, left, bottom, right), and
         `centerness` [N,P] logits.

The distances are the head's linear output times the level's stride (not exp or ReLU): a
location just outside a box narrower than the stride (a thin "1") can still be trained to it
(training/tasks/detection.py gives every box at least one location), with a negative distance.
Decoding (`DecodeDetections`: boxes and scores = sqrt(sigmoid(class) x sigmoid(centerness)))
is a separate layer, and non-max suppression a separate function (boxkit/, TensorFlow ops that
convert to builtin TFLite ops), so the same weights train and export. `points(image_shape,
levels)` gives each output row's location and stride; `encode_boxes` / `decode_boxes` convert
between boxes and distances.
"""

import re

import keras
import numpy as np
from keras import layers, ops

from zoo.registry import register
from zoo.vision.backbones import feature_levels

PRIOR = 0.01  # initial probability of every class at every location (Lin et al. 2017)


def points(image_shape, levels):
    """Each output row's location (y, x) in pixels [P,2] and its level's stride [P], level by
    level, rows then columns: a level-L map of an HxW image has ceil(H/2^L) x ceil(W/2^L)
    locations, at the centres of their 2^L-pixel cells."""
    yx, strides = [], []
    for level in levels:
        stride = 2**level
        h, w = -(-int(image_shape[0]) // stride), -(-int(image_shape[1]) // stride)
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        yx.append((np.stack([ys, xs], -1).reshape(-1, 2) + 0.5) * stride)
        strides.append(np.full(h * w, stride))
    return np.concatenate(yx).astype("float32"), np.concatenate(strides).astype("float32")


def decode_boxes(distances, yx):
    """Distances (top, left, bottom, right) [..., P, 4] from locations yx [P,2] -> boxes (ymin,
    xmin, ymax, xmax), corners put in order where the distances cross."""
    y, x = yx[..., 0], yx[..., 1]
    y1, x1 = y - distances[..., 0], x - distances[..., 1]
    y2, x2 = y + distances[..., 2], x + distances[..., 3]
    return ops.stack(
        [ops.minimum(y1, y2), ops.minimum(x1, x2), ops.maximum(y1, y2), ops.maximum(x1, x2)],
        axis=-1,
    )


def encode_boxes(boxes, yx):
    """Boxes (ymin, xmin, ymax, xmax) [..., P, 4] -> distances (top, left, bottom, right) from
    the locations yx [P,2]; negative where a location lies outside its box."""
    y, x = yx[..., 0], yx[..., 1]
    return ops.stack(
        [y - boxes[..., 0], x - boxes[..., 1], boxes[..., 2] - y, boxes[..., 3] - x], axis=-1
    )


def levels_of(model) -> list[int]:
    """The pyramid levels of an FCOS model, from its `fpn_p<L>` layers."""
    found = sorted(int(m[1]) for m in (re.fullmatch(r"fpn_p(\d+)", layer.name) for layer in
                   model.layers) if m)  # fmt: skip
    if not found:
        raise ValueError(f"model {model.name!r} has no fpn_p<L> layers: not an FCOS detector")
    return found


@keras.saving.register_keras_serializable(package="zoo")
class DecodeDetections(layers.Layer):
    """Raw FCOS outputs -> `boxes` [N,P,4] (ymin, xmin, ymax, xmax) normalized to the image and
    clipped to [0, 1], and `scores` [N,P,K] = sqrt(sigmoid(class logit) x sigmoid(centerness
    logit)), FCOS's ranking score. Non-max suppression comes after (boxkit.nms)."""

    def __init__(self, image_shape, levels, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape[:2])
        self.levels = tuple(int(level) for level in levels)
        yx, _ = points(self.image_shape, self.levels)
        self._yx = yx
        self._scale = np.array([*self.image_shape, *self.image_shape], "float32")

    def call(self, outputs):
        distances = ops.cast(outputs["distances"], "float32")
        boxes = decode_boxes(distances, ops.convert_to_tensor(self._yx)) / self._scale
        classes = ops.sigmoid(ops.cast(outputs["classes"], "float32"))
        centerness = ops.sigmoid(ops.cast(outputs["centerness"], "float32"))
        scores = ops.sqrt(classes * centerness[..., None])
        return {"boxes": ops.clip(boxes, 0.0, 1.0), "scores": scores}

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape, "levels": self.levels}


def _conv_gn_relu(filters, groups, name):
    return [
        layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv"),
        layers.GroupNormalization(groups=groups, name=f"{name}_gn"),
        layers.Activation("relu", name=f"{name}_relu"),
    ]


def _apply(stack, x):
    for layer in stack:
        x = layer(x)
    return x


@register(
    "fcos",
    task="detection",
    input_shape=(512, 512, 3),
    citation="Tian, Shen, Chen, He. FCOS: Fully Convolutional One-Stage Object Detection. "
    "ICCV 2019",
    tiny={
        "input_shape": (64, 64, 1),
        "num_classes": 3,
        "backbone": "resnet18",
        "backbone_overrides": {"width": 8, "blocks": (1, 1, 1, 1)},
        "levels": (3, 4, 5),
        "fpn_filters": 16,
        "head_convs": 1,
        "groups": 4,
    },
)
def fcos(
    input_shape=(512, 512, 3),
    num_classes=20,
    backbone="resnet50",
    backbone_overrides=None,
    levels=(3, 4, 5, 6, 7),
    fpn_filters=256,
    head_convs=4,
    groups=32,
    name="fcos",
):
    """FCOS on an FPN over a zoo backbone; raw per-location outputs, concatenated over levels.

    `backbone`: any zoo convnet (resnet18/34/50, mobilenet_v2, efficientnet_b0, vgg*) with
    `backbone_overrides` for its builder (width, blocks, alpha); `levels`: consecutive pyramid
    levels, those up to 5 from the backbone (C3-C5), those above from stride-2 convs on P5 (the
    paper: 3-7); `fpn_filters`: the pyramid's and the head's width (256); `head_convs`: conv
    layers per tower (4); `groups`: GroupNorm groups in the head (32).
    """
    levels = tuple(int(level) for level in levels)
    if list(levels) != list(range(levels[0], levels[0] + len(levels))) or levels[0] < 2:
        raise ValueError(f"fcos: levels must be consecutive, from 2 up, not {levels}")
    if fpn_filters % groups:
        raise ValueError(f"fcos: fpn_filters {fpn_filters} is not divisible by groups {groups}")
    from_backbone = [level for level in levels if level <= 5]
    if not from_backbone:
        raise ValueError(f"fcos: levels {levels} take no map from the backbone (levels <= 5)")
    step = 2 ** from_backbone[-1]
    if input_shape[0] % step or input_shape[1] % step:
        raise ValueError(
            f"fcos: input height and width {tuple(input_shape[:2])} must be divisible by "
            f"2^{from_backbone[-1]} = {step} (the pyramid's top-down sums)"
        )
    inputs = keras.Input(shape=input_shape, name="images")
    trunk = feature_levels(backbone, input_shape, from_backbone, **(backbone_overrides or {}))
    features = trunk(inputs)
    features = features if isinstance(features, (list, tuple)) else [features]

    # FPN: lateral 1x1 convs, top-down nearest upsampling and sums, 3x3 output convs
    pyramid = {}
    top = None
    for level, c in reversed(list(zip(from_backbone, features))):
        x = layers.Conv2D(fpn_filters, 1, name=f"fpn_c{level}_lateral")(c)
        if top is not None:
            up = layers.UpSampling2D(2, name=f"fpn_p{level + 1}_upsample")(top)
            x = layers.Add(name=f"fpn_p{level}_add")([x, up])
        top = x
        pyramid[level] = layers.Conv2D(fpn_filters, 3, padding="same", name=f"fpn_p{level}")(x)
    x = pyramid[from_backbone[-1]]
    for level in (level for level in levels if level > 5):
        if level > 6:
            x = layers.Activation("relu", name=f"fpn_p{level - 1}_relu")(x)
        x = layers.Conv2D(fpn_filters, 3, strides=2, padding="same", name=f"fpn_p{level}")(x)
        pyramid[level] = x

    # the head: the same layers (weights) on every level
    cls_tower = [
        layer
        for i in range(head_convs)
        for layer in _conv_gn_relu(fpn_filters, groups, f"cls_tower{i + 1}")
    ]
    box_tower = [
        layer
        for i in range(head_convs)
        for layer in _conv_gn_relu(fpn_filters, groups, f"box_tower{i + 1}")
    ]
    prior = keras.initializers.Constant(-float(np.log((1 - PRIOR) / PRIOR)))
    small = keras.initializers.RandomNormal(stddev=0.01)
    class_logits = layers.Conv2D(
        num_classes, 3, padding="same", kernel_initializer=small, bias_initializer=prior,
        dtype="float32", name="class_logits",
    )  # fmt: skip
    box_distances = layers.Conv2D(
        4, 3, padding="same", kernel_initializer=small, bias_initializer="ones", dtype="float32",
        name="box_distances",
    )  # fmt: skip
    centerness_logits = layers.Conv2D(
        1, 3, padding="same", kernel_initializer=small, dtype="float32", name="centerness_logits"
    )
    classes, distances, centerness = [], [], []
    for level in levels:
        cls = _apply(cls_tower, pyramid[level])
        box = _apply(box_tower, pyramid[level])
        classes.append(layers.Reshape((-1, num_classes), name=f"p{level}_classes")(
            class_logits(cls)))  # fmt: skip
        # the head predicts distances in strides: one head serves every level
        scaled = layers.Rescaling(2.0**level, name=f"p{level}_stride")(box_distances(box))
        distances.append(layers.Reshape((-1, 4), name=f"p{level}_distances")(scaled))
        centerness.append(layers.Reshape((-1,), name=f"p{level}_centerness")(
            centerness_logits(box)))  # fmt: skip

    def joined(tensors, name):
        if len(tensors) == 1:
            return layers.Identity(name=name)(tensors[0])
        return layers.Concatenate(axis=1, name=name)(tensors)

    outputs = {
        "classes": joined(classes, "classes"),
        "distances": joined(distances, "distances"),
        "centerness": joined(centerness, "centerness"),
    }
    return keras.Model(inputs, outputs, name=name)

"""The frame-averaging baseline: a zoo 2D image classifier applied to every frame of a clip on its
own, its class probabilities averaged over time. It sees the frames as a bag, so it cannot tell
motion: on moving digits (where every frame alone looks like a still digit) it stays near chance,
the yardstick for the video models.

Clips [N,T,H,W,C] in (raw pixels, as the backbone takes them); the frames are folded into the batch
(`merge_frames`: [N*T,H,W,C]), go through the backbone, a nested model named as the backbone, and
are unfolded (`split_frames`: [N,T,K]) and averaged (`average_over_time`, float32).
"""

import keras
from keras import layers, ops

from zoo.registry import build, get_spec, register


@keras.saving.register_keras_serializable(package="zoo")
class MergeFrames(layers.Layer):
    """[N,T,...] -> [N*T,...]: the frames of every clip as a batch of images."""

    def call(self, x):
        return ops.reshape(x, (-1, *x.shape[2:]))

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[2:])


@keras.saving.register_keras_serializable(package="zoo")
class SplitFrames(layers.Layer):
    """[N*T,...] -> [N,T,...]: per-frame outputs back to their clips."""

    def __init__(self, frames, **kwargs):
        super().__init__(**kwargs)
        self.frames = int(frames)

    def call(self, x):
        return ops.reshape(x, (-1, self.frames, *x.shape[1:]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frames, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "frames": self.frames}


@register(
    "frames",
    task="video_classification",
    input_shape=(16, 64, 64, 1),
    citation="Karpathy et al. 2014, Large-scale Video Classification with Convolutional Neural "
    "Networks (the single-frame baseline, predictions averaged over the clip)",
    tiny={"input_shape": (8, 32, 32, 1), "backbone_tiny": True},
)
def frames(
    input_shape=(16, 64, 64, 1),
    num_classes=8,
    backbone="cnn",
    backbone_overrides=None,
    backbone_tiny=False,
    name="frames",
):
    """A zoo image classifier on every frame, its probabilities averaged over the frames."""
    if len(input_shape) != 4:
        raise ValueError(
            f"input_shape must be (frames, height, width, channels), got {input_shape}"
        )
    if get_spec(backbone).task != "classification":
        raise ValueError(f"backbone {backbone!r} is not a zoo image classifier")
    classifier = build(
        backbone,
        tiny=backbone_tiny,
        input_shape=tuple(input_shape[1:]),
        num_classes=num_classes,
        **dict(backbone_overrides or {}),
    )
    inputs = keras.Input(shape=input_shape, name="videos")
    x = MergeFrames(name="merge_frames")(inputs)
    x = classifier(x)
    x = SplitFrames(input_shape[0], name="split_frames")(x)
    outputs = layers.GlobalAveragePooling1D(dtype="float32", name="average_over_time")(x)
    return keras.Model(inputs, outputs, name=name)

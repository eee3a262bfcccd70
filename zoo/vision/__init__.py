"""Image models: one module per family."""

from zoo.vision import (  # noqa: F401
    cnn,
    efficientnet,
    inception,
    mobilenet,
    resnet,
    vgg,
    vit,
)

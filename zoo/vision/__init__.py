"""Image models: one module per family; `_common` holds the pieces the families share."""

from zoo.vision import (  # noqa: F401
    cnn,
    efficientnet,
    inception,
    mobilenet,
    resnet,
    unet,
    vgg,
    vit,
)

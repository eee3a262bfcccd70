"""Image models: one module per family; `_common` holds the pieces the families share."""

from zoo.vision import (  # noqa: F401
    cnn,
    deeplab,
    efficientnet,
    fcos,
    inception,
    mobilenet,
    resnet,
    ssl,
    unet,
    vgg,
    vit,
)

"""Image models: one module per family."""

from zoo.vision import cnn  # noqa: F401

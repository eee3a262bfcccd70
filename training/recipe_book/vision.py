"""Image-classification recipes."""

from training.recipes import add

add(
    "cnn",
    description="The classic convnet (keras-io mnist_convnet) on MNIST, exported for serving.",
    model={"name": "cnn"},
    data={"dataset": "mnist"},
    task={"name": "classification", "augment": "crop", "label_smoothing": 0.0},
    optimizer={"name": "adam", "lr": 1e-3, "schedule": "cosine"},
    train={"epochs": 20, "batch_size": 64},
)

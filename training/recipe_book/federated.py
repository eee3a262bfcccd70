"""The federated recipe: the model that `python -m training federate` trains on the digits.

`cnn-federated`: the `cnn` recipe's convnet (two convs per stage, rotation/scale/shift
augmentation, label smoothing) without batch normalization, and Adam at a constant 1e-3. Under
FedAvg each client takes a handful of steps per round (40 digits in batches of 10), and
BatchNormalization's moving statistics (momentum 0.99) then trail the weights by hundreds of
steps: the averaged `cnn` scored chance (0.097) on the test digits for its first 5 rounds while
it trained. Without the layer the global model is evaluated as it trains. Trained centrally
(`python -m training train cnn-federated`) it is the baseline the federated runs are compared
with: the same model, the same budget as `cnn` (1,240 steps of 64).
"""

from training.recipe_book.vision import CNN
from training.recipes import add

add(
    "cnn-federated",
    description="The cnn without batch normalization, Adam at a constant 1e-3: the model "
    "`federate` trains over many clients (FedAvg averages no moving statistics).",
    **{
        **CNN,
        "model": {
            "name": "cnn",
            "overrides": {"convs_per_stage": 2, "batch_norm": False, "dropout": 0.25},
        },
        "optimizer": {"name": "adam", "lr": 1e-3, "schedule": "constant"},
    },
)

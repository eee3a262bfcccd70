"""Transfer-learning recipes on the digits: learn 0-4, then 5-9 from 20 labelled images a class.

`cnn-digits0to4`: the cnn recipe on the digits 0-4 only (`data.classes`). `cnn-digits5to9` starts
from its newest run (`model.init_from`), with a new 5-way head (`model.init_exclude`), on the
first 20 training images of each of 5-9 (`data.per_class`): the loaded layers are frozen for the
first 10 epochs (the head learns alone), then everything trains at a tenth of the learning rate.
`cnn-digits5to9-scratch` is the same training without the pretrained layers, the baseline.
Both are scored on all the held-out 5-9 digits: after 100 epochs (500 steps) 0.953 against 0.760;
given 200 epochs, the scratch cnn catches up (both 0.963). Pretraining buys the epochs.
"""

from training.recipe_book.vision import CNN
from training.recipes import add

FEW = {
    "data": {**CNN["data"], "classes": [5, 6, 7, 8, 9], "per_class": 20},
    # 100 images: batches of 20, 5 steps an epoch, no step budget; augmentation as the cnn's
    "train": {"epochs": 100, "batch_size": 20, "max_steps": 0},
    "optimizer": {"name": "adam", "lr": 1e-3, "schedule": "cosine"},
}

add(
    "cnn-digits0to4",
    description="The cnn recipe on the digits 0-4 only: the pretrained model of cnn-digits5to9.",
    **{
        **CNN,
        "data": {**CNN["data"], "classes": [0, 1, 2, 3, 4]},
        "train": {**CNN["train"], "max_steps": 620},  # 20 epochs of the ~2,000 digits 0-4
    },
)
add(
    "cnn-digits5to9",
    description="Fine-tunes the newest cnn-digits0to4 run on 20 images of each digit 5-9: "
    "a new head alone for 10 epochs, then everything at a tenth of the learning rate.",
    **{
        **CNN,
        **FEW,
        "model": {
            **CNN["model"],
            "init_from": "runs/cnn-digits0to4",
            "init_exclude": ["predictions"],
        },
        "train": {
            **FEW["train"],
            "freeze": "backbone",
            "freeze_epochs": 10,
            "unfreeze_lr_scale": 0.1,
        },
    },
)
add(
    "cnn-digits5to9-scratch",
    description="The cnn trained from scratch on the 100 images cnn-digits5to9 fine-tunes on: "
    "its baseline.",
    **{**CNN, **FEW},
)

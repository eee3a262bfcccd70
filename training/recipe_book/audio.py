"""Audio recipes: spoken digits (the Free Spoken Digit Dataset: 2,500 recordings of 5 speakers at
8 kHz; offline from ../shared/data/spoken-digits, a `folder:` of WAV files with FSDD's test
split, the first 5 recordings of each speaker and digit) and Speech Commands for users.
"""

from training.recipes import add

SPOKEN_DIGITS = {
    "dataset": "spoken_digit",
    "fallback": "folder:../shared/data/spoken-digits",
    "train_split": "train",
    "validation_split": "test",
    # the speaker in FSDD's file names, <digit>_<speaker>_<n>.wav (python -m training crossval)
    "hold_out": {"key": "audio/filename", "pattern": "^[^_]+_([^_]+)_", "group": None},
}
# the perturbations of training clips (training/tasks/audio.py); SpecAugment is in the model
PERTURB = {"speed": 0.1, "shift": 0.1, "gain_db": 6.0, "noise": [10.0, 40.0]}

add(
    "ds_cnn-spoken-digits",
    description="DS-CNN keyword spotter (Hello Edge, S size) on spoken digits: log-mels in the "
    "graph, per-utterance normalization, SpecAugment, speed/shift/gain/noise perturbation.",
    model={"name": "ds_cnn"},
    data=SPOKEN_DIGITS,
    task={"name": "audio_classification", "clip_seconds": 1.0, **PERTURB},
    optimizer={"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "schedule": "cosine"},
    train={"epochs": 30, "batch_size": 64},
)
add(
    "ds_cnn-speech-commands",
    description="DS-CNN keyword spotter on Speech Commands v0.02 (12 classes, 16 kHz, 1 s); "
    "tfds downloads it (a GPU or a long CPU run).",
    model={"name": "ds_cnn", "overrides": {"filters": 172}},
    data={"dataset": "speech_commands", "train_split": "train", "validation_split": "validation"},
    task={"name": "audio_classification", "clip_seconds": 1.0, **PERTURB},
    optimizer={"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "schedule": "cosine"},
    train={"epochs": 30, "batch_size": 100},
)

"""Audio recipes: spoken digits (the Free Spoken Digit Dataset: 2,500 recordings of 5 speakers at
8 kHz; offline from ../shared/data/spoken-digits, a `folder:` of WAV files with FSDD's test
split, the first 5 recordings of each speaker and digit) and Speech Commands for users.

Measured 2026-12-02 (`python -m training train ds_cnn-spoken-digits`, 30 epochs = 1,050 steps of
64, a 2-core CPU shared with other jobs): 0.940 on the 250 test recordings (speakers it has
heard; the issue asks 0.97), 708 CPU seconds (user 693 + sys 15, with the export) in 16.8
minutes of wall time. The training clips' accuracy was still 0.80 at the end (the perturbations
and SpecAugment together are strong for 30 epochs). With Keras' batch-normalization momentum
(0.99) the validation accuracy stayed at chance for the first 7 epochs (35 steps each: the
moving statistics of log-mels, far from zero mean, lag behind), hence 0.9 here. TFLite:
float32 gives the SavedModel's 0.940; the full-integer int8 variant collapses to 0.140 (the
power spectrum's range does not survive int8 activations), so a device takes float32 or
dynamic-range for now. Leave-one-speaker-out (`make crossval-ds_cnn`): not measured yet.
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
    # moving statistics that keep up: 35 steps an epoch, inputs far from zero mean (log-mels)
    model={"name": "ds_cnn", "overrides": {"batch_norm_momentum": 0.9}},
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

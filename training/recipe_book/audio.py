"""Audio recipes: spoken digits (the Free Spoken Digit Dataset: 2,500 recordings of 5 speakers at
8 kHz; offline from ../shared/data/spoken-digits, a `folder:` of WAV files with FSDD's test
split, the first 5 recordings of each speaker and digit) and Speech Commands for users.

Measured 2026-12-03 (`python -m training train ds_cnn-spoken-digits`, 60 epochs = 2,100 steps of
64, a 2-core CPU shared with another job): 0.996 on the 250 test recordings (speakers it has
heard; the issue asks 0.97), 464 CPU seconds (user 432 + sys 32, with the export). TFLite:
float32, float16 and int8 (its `log_mel` front end kept float, the rest int8) give the
SavedModel's 0.996; dynamic-range 0.984. The features are 13 MFCCs of log-mels floored 40 dB
below each utterance's peak (`front.top_db`), normalized per utterance and bin (cepstral mean and
variance normalization): on a speaker never heard they generalize where log-mels do not. The
floor matters because a clip is padded to 1 s with digital silence, whose log-mels (log 1e-6) lie
far below any recording's own hiss, and training adds noise over the padding where a served clip
has none: unfloored, the normalization's statistics depend on the word's length, the recording's
hiss and the added noise. Leave one speaker out (`make crossval-ds_cnn`, 2026-12-03, accuracy on
the 500 recordings of the speaker left out):

| features, epochs a fold | george | jackson | lucas | nicolas | yweweler | mean |
|---|---|---|---|---|---|---|
| unfloored (the recipe until 2026-12-03), 30 | 0.788 | 0.650 | 0.848 | 0.804 | 0.900 | 0.798 |
| floored at 40 dB, 30 | 0.834 | 0.718 | 0.924 | 0.812 | 0.944 | 0.846 |
| 40 dB, 60 (as shipped; 1,940 CPU s) | 0.850 | 0.768 | 0.932 | 0.826 | 0.930 | 0.861 |
| 40 dB + VTLP 0.1, 30 | 0.832 | 0.732 | 0.930 | 0.816 | 0.926 | 0.847 |
| 30 dB, 30 (stopped) | 0.786 | 0.638 | 0.892 | - | - | - |
| 40 dB, normalized over frames above it, 30 | 0.806 | 0.786 | 0.894 | 0.692 | 0.832 | 0.802 |

The issue's 0.90 mean is not reached. A fold's result moves by several points between nearby
settings (jackson's fold: 0.70, 0.79, 0.67 with the last row's normalization at floors of
30, 40, 50 dB), so one fold decides nothing. Jackson's errors (floored at 40 dB, 30
epochs) are few words, each misread the same way: "six" read as "four" 42 times of 50, "eight"
as "three" 22, "two" as "zero" 19. The rest of this note was measured without the floor:
with 40 log-mels george gave 0.412 (not normalized) and 0.496 (normalized); vocal tract length
perturbation of up to 10% (`--set model.overrides.front.vtlp=0.1`) gave jackson 0.618 against 0.650
without, so the recipe leaves it off. More capacity, jackson's fold alone (2026-12-03, 30 epochs):
Hello Edge's M size (172 filters) 0.702, L size (276 filters, 5 blocks) 0.670 at the end after 0.78
at epoch 19 (its held-out accuracy swings from epoch to epoch), so the recipe stays at S. Speed
perturbation of +-25% in place of +-10% (jackson's fold, 30 epochs, 2026-12-03) gave 0.582: it
plateaus near 0.6 from epoch 13 on while the training accuracy climbs to 0.84. Also tried
2026-12-03, 30 epochs: on jackson's fold alone AdamW's weight decay at 1e-2 in place of 1e-4 gave
0.694 and 20 MFCCs in place of 13 gave 0.732, but over all five folds the 20 MFCCs gave george
0.790, jackson 0.732, lucas 0.736, nicolas 0.792, yweweler 0.856, mean 0.781 (1,445 CPU seconds),
and both together 0.668, 0.670 and 0.774 on the first three folds (stopped): the recipe keeps its
13 MFCCs and 1e-4. Earlier: 40 log-mels, not normalized,
0.940 after 30 epochs and 0.988 after 60 (964 CPU seconds, int8 collapsing to 0.208). With Keras'
batch-normalization momentum (0.99) the validation accuracy stayed at chance for the first 7 epochs
(35 steps each: the moving statistics, far from zero mean, lag behind), hence 0.9.
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
    description="DS-CNN keyword spotter (Hello Edge, S size) on spoken digits: MFCCs in the "
    "graph, per-utterance normalization, SpecAugment, speed/shift/gain/noise perturbation.",
    # batch normalization's moving statistics that keep up with 35 steps an epoch
    model={
        "name": "ds_cnn",
        "overrides": {
            "batch_norm_momentum": 0.9,
            "front": {"features": "mfcc", "mfcc": 13, "normalize": "bins", "top_db": 40.0},
        },
    },
    data=SPOKEN_DIGITS,
    task={"name": "audio_classification", "clip_seconds": 1.0, **PERTURB},
    optimizer={"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "schedule": "cosine"},
    train={"epochs": 60, "batch_size": 64},
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

# Speech recognition (CTC) on spoken digit strings, made from the same recordings by the rules
# of training/digit_strings.py: 2-7 recordings of one speaker and one split, 50-300 ms apart.
# Measured 2026-12-02 (`python -m training train conformer-spoken-digit-strings`, 20 epochs =
# 1,400 steps of 32 strings, a 2-core CPU shared with other jobs): on the 250 test strings CER
# 0.0187 greedy, 0.0178 beam (8), WER the same (a digit is a word); 812 CPU seconds (user 743 +
# sys 68, with the export), 28.7 minutes of wall time. CTC's blank-only plateau lasts 4 epochs
# (loss ~12), then the CER falls (0.34 after 5, 0.037 after 8). 10 epochs gave 0.067.
# TFLite float32 matches the SavedModel's frame probabilities (max diff ~2e-5); dynamic-range
# flips ~3% of frames' argmax. crnn-spoken-digits: 0.952 on the 250 test recordings, 327 CPU
# seconds; its float32 TFLite 0.952, dynamic-range 0.768. crnn-spoken-digit-strings: not measured.
# per split as many strings as the split has recordings, none longer than the model's clip
SPOKEN_DIGIT_STRINGS = {
    "dataset": "digit_strings:spoken_digit?max_seconds=5",
    "fallback": "digit_strings:folder:../shared/data/spoken-digits?max_seconds=5",
    "train_split": "train",
    "validation_split": "test",
}
SPOKEN_DIGIT_STRINGS_TASK = {
    "name": "speech_recognition",
    "clip_seconds": 5.0,
    "beam_width": 8,
    "gain_db": 6.0,
    "noise": [20.0, 40.0],
}

add(
    "crnn-spoken-digits",
    description="CRNN (2 conv blocks + 2 bidirectional GRUs) classifying spoken digits: "
    "log-mels in the graph, per-utterance normalization, SpecAugment, perturbation.",
    model={"name": "crnn", "overrides": {"unroll": True}},  # converts to TFLite builtins
    data=SPOKEN_DIGITS,
    task={"name": "audio_classification", "clip_seconds": 1.0, **PERTURB},
    optimizer={"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "schedule": "cosine"},
    train={"epochs": 20, "batch_size": 64},
    export={"tflite": {"variants": ["float32", "dynamic"]}},
)
add(
    "crnn-spoken-digit-strings",
    description="CRNN + CTC transcribing spoken digit strings (2-7 digits of one FSDD speaker); "
    "greedy and beam decoding, CER/WER by jiwer.",
    # unrolled GRUs (the same weights) convert to TFLite builtins; 20 ms frames: half the steps
    model={"name": "crnn_ctc", "overrides": {"unroll": True, "front": {"hop_ms": 20.0}}},
    data=SPOKEN_DIGIT_STRINGS,
    task=SPOKEN_DIGIT_STRINGS_TASK,
    optimizer={"name": "adamw", "lr": 2e-3, "weight_decay": 1e-4, "schedule": "cosine"},
    train={"epochs": 15, "batch_size": 32},
    export={"tflite": {"variants": ["float32"]}},
)
add(
    "conformer-spoken-digit-strings",
    description="Small Conformer (4 blocks, 96 wide) + CTC transcribing spoken digit strings; "
    "greedy and beam decoding, CER/WER by jiwer.",
    # frames every 20 ms (a digit lasts ~0.45 s): half the work of 10 ms, enough frames for CTC
    model={"name": "conformer_ctc", "overrides": {"front": {"hop_ms": 20.0}}},
    data=SPOKEN_DIGIT_STRINGS,
    task=SPOKEN_DIGIT_STRINGS_TASK,
    optimizer={
        "name": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "warmup_steps": 100,
    },
    train={"epochs": 20, "batch_size": 32},
    export={"tflite": {"variants": ["float32", "dynamic"]}},
)

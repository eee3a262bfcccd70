"""Moving digits: clips of one real digit crossing a small canvas, for video models offline and in
tests; the label is the direction, so no single frame tells it.

    --dataset moving_digits:folder:../shared/data/mnist5k?count=1000&seed=0
    --dataset moving_digits:sample:mnist5k

After `moving_digits:` comes any image-classification source of 28x28x1 digits; `count` is the
number of clips per split (default: one per digit of the split) and `seed` the seed (default 0).
A split's clips are made from that split's digits only. Each clip, exactly:

- 16 frames of 64x64x1 uint8, black;
- one digit (drawn uniformly, with replacement), its 28x28 image pasted as it is, moving 2 pixels
  a frame in one of 8 directions, uniformly: E, NE, N, NW, W, SW, S, SE (N is up; a diagonal
  step is 2 pixels on each axis), from a start drawn uniformly among those that keep the whole
  28x28 square inside the canvas in all 16 frames;
- its label: the direction's index in DIRECTIONS (8 classes). Every frame alone looks like a
  still digit, so a model that ignores time stays at chance (12.5%).

Features, as tfds' video data sets name them: `video` uint8 [16,64,64,1], `label` int64. The clip
parameters are drawn with NumPy (deterministic for seed and split); the frames are made in the
tf.data pipeline, so no split is held in memory as video.
"""

import zlib

import numpy as np

FRAMES = 16
CANVAS = 64
DIGIT = 28
STEP = 2
DIRECTIONS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
# (dy, dx) a frame; y grows downwards, so north is -y
MOVES = {
    "E": (0, STEP),
    "NE": (-STEP, STEP),
    "N": (-STEP, 0),
    "NW": (-STEP, -STEP),
    "W": (0, -STEP),
    "SW": (STEP, -STEP),
    "S": (STEP, 0),
    "SE": (STEP, STEP),
}


def split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"moving:{split}".encode())])


def _start(rng, step) -> int:
    """A start coordinate keeping the digit inside on this axis for all the frames."""
    travel = (FRAMES - 1) * step
    low, high = max(0, -travel), CANVAS - DIGIT - max(0, travel)
    return int(rng.integers(low, high + 1))


def clips(num_digits: int, count: int, rng: np.random.Generator) -> dict:
    """Parameters of `count` clips: `digit` (index into the split's digits), `label` (direction),
    `y`, `x` (the first frame's top-left corner), `dy`, `dx` (a frame's move); int32 arrays."""
    digit = rng.integers(num_digits, size=count)
    label = rng.integers(len(DIRECTIONS), size=count)
    moves = np.array([MOVES[DIRECTIONS[k]] for k in label]).reshape(-1, 2)
    y = np.array([_start(rng, dy) for dy in moves[:, 0]], np.int64)
    x = np.array([_start(rng, dx) for dx in moves[:, 1]], np.int64)
    return {
        "digit": digit.astype(np.int32),
        "label": label.astype(np.int64),
        "y": y.astype(np.int32),
        "x": x.astype(np.int32),
        "dy": moves[:, 0].astype(np.int32),
        "dx": moves[:, 1].astype(np.int32),
    }


def frames(digit, y, x, dy, dx):
    """The clip [16,64,64,1] uint8 of a [28,28,1] digit (TensorFlow, for tf.data)."""
    import tensorflow as tf

    return tf.stack(
        [
            tf.image.pad_to_bounding_box(digit, y + t * dy, x + t * dx, CANVAS, CANVAS)
            for t in range(FRAMES)
        ]
    )

"""Digit scenes: real digits scattered on a canvas, with boxes, masks and a caption, for the dense
prediction tasks (segmentation, detection, captioning) offline and in tests.

    --dataset digit_scenes:folder:../shared/data/mnist5k?count=2000&seed=0
    --dataset digit_scenes:sample:mnist5k

After `digit_scenes:` comes any image-classification source of 28x28x1 digits (a folder, a bundled
sample, a tfds name); `count` is the number of scenes per split (default: two per digit of the
split, so 2,000 from the 1,000 shared test digits) and `seed` the seed (default 0). Scenes of a
split are built from that split's digits only. Each scene, exactly:

- a 128x128x1 uint8 canvas, black, with k digits, k uniform in 1..5;
- each digit (drawn uniformly, with replacement, from the split) resized bilinearly from 28x28 to
  s x s, s uniform in 28..56, at a uniform position with the whole s x s square inside the
  canvas; the position is redrawn (up to 50 times) while the digit's box would overlap an earlier
  box with IoU > 0.3 (after 50 the digit is left out, so the rule always holds: at most 5 digits
  make this rare); composited by maximum;
- its box: the tight box of its resized pixels >= 128, (ymin, xmin, ymax, xmax) in pixel edges
  (ymax, xmax exclusive): the box holds exactly those pixels and touches each of them on its
  sides;
- its mask: those same pixels, class = the digit's label index + 1 (0 is background; where digits
  overlap, the later one wins);
- its caption: the digits' names left to right by the centre x of their boxes (ties by centre
  y), in English words for 0-9 ("seven two nine").

The source's features, as tfds names them: `image` uint8 [128,128,1]; `segmentation_mask` uint8
[128,128,1]; `objects` with `bbox` float32 [k,4] (the pixel box / 128, tfds' normalized
ymin, xmin, ymax, xmax) and `label` int64 [k] (the digit's label index); `caption` string.

The builder is NumPy and PIL (no TensorFlow), deterministic for (seed, split) on any machine.
"""

import zlib

import numpy as np

CANVAS = 128
DIGIT = 28
SIZES = (28, 56)  # s, inclusive
MAX_DIGITS = 5
MAX_IOU = 0.3
TRIES = 50
INK = 128  # pixels >= INK make the box and the mask
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def iou(a, b) -> float:
    """IoU of two (ymin, xmin, ymax, xmax) boxes."""
    h = min(a[2], b[2]) - max(a[0], b[0])
    w = min(a[3], b[3]) - max(a[1], b[1])
    if h <= 0 or w <= 0:
        return 0.0
    inter = h * w
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def _resized(digit: np.ndarray, s: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(digit).resize((s, s), Image.BILINEAR))


def scene(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, instances=False):
    """One scene from `digits` (uint8 [N,28,28] or [N,28,28,1]) and their `labels`: a dict of
    `image` [128,128,1], `mask` [128,128,1], `boxes` int [k,4] in pixels, `labels` [k], `sizes`
    [k] (s), and with `instances` the boolean [k,128,128] ink of each digit before compositing."""
    digits = digits.reshape(len(digits), DIGIT, DIGIT)
    image = np.zeros((CANVAS, CANVAS), np.uint8)
    mask = np.zeros((CANVAS, CANVAS), np.uint8)
    boxes, kept, sizes, inks = [], [], [], []
    for _ in range(rng.integers(1, MAX_DIGITS + 1)):
        i = rng.integers(len(digits))
        s = int(rng.integers(SIZES[0], SIZES[1] + 1))
        digit = _resized(digits[i], s)
        ink = digit >= INK
        if not ink.any():  # too faint to have a box: no digit here
            continue
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        local = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
        for _ in range(TRIES):
            y, x = (int(v) for v in rng.integers(0, CANVAS - s + 1, size=2))
            box = (y + local[0], x + local[1], y + local[2], x + local[3])
            if all(iou(box, other) <= MAX_IOU for other in boxes):
                break
        else:
            continue
        window = (slice(y, y + s), slice(x, x + s))
        image[window] = np.maximum(image[window], digit)
        mask[window][ink] = labels[i] + 1
        boxes.append(box)
        kept.append(int(labels[i]))
        sizes.append(s)
        if instances:
            full = np.zeros((CANVAS, CANVAS), bool)
            full[window] = ink
            inks.append(full)
    out = {
        "image": image[..., None],
        "mask": mask[..., None],
        "boxes": np.array(boxes, np.int32).reshape(-1, 4),
        "labels": np.array(kept, np.int64),
        "sizes": np.array(sizes, np.int32),
    }
    if instances:
        out["instances"] = np.array(inks, bool).reshape(-1, CANVAS, CANVAS)
    return out


def caption(boxes: np.ndarray, labels: np.ndarray, class_names) -> str:
    """The digits left to right by their boxes' centre x (ties by centre y), as words."""
    centres = [((b[1] + b[3]) / 2, (b[0] + b[2]) / 2) for b in boxes]
    order = sorted(range(len(labels)), key=lambda j: centres[j])
    names = [str(class_names[labels[j]]) for j in order]
    return " ".join(WORDS[int(n)] if n.isdigit() and int(n) < 10 else n for n in names)


def split_rng(seed: int, split: str) -> np.random.Generator:
    """The generator of a split's scenes: a split's scenes do not depend on the others'."""
    return np.random.default_rng([seed, zlib.crc32(split.encode())])


def build(digits, labels, count: int, rng: np.random.Generator, class_names) -> dict:
    """`count` scenes as arrays: images, masks [count,128,128,1]; boxes [count,5,4] float32
    normalized and labels [count,5], padded past `objects` [count]; captions [count]."""
    images = np.zeros((count, CANVAS, CANVAS, 1), np.uint8)
    masks = np.zeros_like(images)
    boxes = np.zeros((count, MAX_DIGITS, 4), np.float32)
    kept = np.zeros((count, MAX_DIGITS), np.int64)
    objects = np.zeros(count, np.int32)
    captions = []
    for n in range(count):
        one = scene(digits, labels, rng)
        k = len(one["labels"])
        images[n], masks[n], objects[n] = one["image"], one["mask"], k
        boxes[n, :k] = one["boxes"] / CANVAS
        kept[n, :k] = one["labels"]
        captions.append(caption(one["boxes"], one["labels"], class_names))
    return {
        "images": images,
        "masks": masks,
        "boxes": boxes,
        "labels": kept,
        "objects": objects,
        "captions": np.array(captions, object),
    }

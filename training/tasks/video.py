"""Video classification: clips [N,T,H,W,C] -> one of K classes (tfds `ucf101`, or the offline
`moving_digits:` clips whose label is a direction of motion).

Before the cache each video is cut to a window of `clip_frames` frames (the middle of the video,
looped if it is shorter) and resized to `image_size`; its pixels stay uint8, so a cached split
takes a quarter of the memory of floats. The model sees `frames` frames, `frame_stride` apart:
for training the `crop_flip` augmentation takes them from a random start in the window (a random
temporal crop), for evaluation the steps take the middle ones. Augmentations (`augment`):

- "none";
- "flip": a horizontal flip of the whole clip, half of the time, with the label mirrored where
  the classes are the compass directions of moving digits (E <-> W, NE <-> NW, SE <-> SW; N and S
  stay) and kept otherwise (UCF101's actions are the same actions mirrored);
- "crop_flip" (UCF101): a random temporal crop, a random resized crop of the same box in every
  frame (`crop_scale`: the least fraction of the side kept), resized back, and the flip.

Loss, metrics and steps are image classification's (cross-entropy with `label_smoothing`,
accuracy, a confusion matrix picture); the frames are sampled in `model_input`.
Each epoch TensorBoard gets `clips`: a few validation clips as strips of frames side by side, each
titled with its predicted and true class (red where they differ).
"""

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from training import summaries
from training.tasks.base import Task
from training.tasks.classification import Classification

AUGMENTATIONS = ("none", "flip", "crop_flip")
COMPASS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
MIRRORED = {"E": "W", "NE": "NW", "N": "N", "NW": "NE", "W": "E", "SW": "SE", "S": "S", "SE": "SW"}


def mirrored_labels(class_names) -> list[int]:
    """The label of each class after a horizontal flip: the mirrored direction for compass
    classes, itself otherwise."""
    names = [str(n) for n in class_names]
    if set(names) == set(COMPASS):
        return [names.index(MIRRORED[n]) for n in names]
    return list(range(len(names)))


class VideoClassification(Classification):
    name = "video_classification"
    video_key, label_key = "video", "label"
    strip_clips = 6  # validation clips drawn as strips each epoch
    strip_frames = 8  # frames of each strip (evenly spaced over the clip)

    def __init__(self, config, source):
        Task.__init__(self, config, source)  # not an image's settings: a video's, below
        self.class_names = [str(n) for n in source.class_names]
        self.num_classes = len(self.class_names)
        shape = tuple(source.features[self.video_key].shape)  # (T or None, H, W, C)
        if len(shape) != 4:
            raise ValueError(f"{source.name}: `{self.video_key}` is not a video ([T,H,W,C])")
        self.frames = int(config.get("frames", shape[0] or 16))
        self.frame_stride = int(config.get("frame_stride", 1))
        span = (self.frames - 1) * self.frame_stride + 1
        self.clip_frames = int(config.get("clip_frames") or span)
        if self.frames < 1 or self.frame_stride < 1 or self.clip_frames < span:
            raise ValueError(
                f"frames={self.frames}, frame_stride={self.frame_stride}: need frames >= 1, "
                f"frame_stride >= 1 and clip_frames >= {span} (the frames' span), "
                f"got clip_frames={self.clip_frames}"
            )
        size = config.get("image_size") or shape[1:3]
        if None in tuple(size) or len(size) != 2:
            raise ValueError(f"{source.name} has frames of no fixed size: set task.image_size")
        self.image_size = (int(size[0]), int(size[1]))
        self.channels = int(shape[3])
        self.augmentation = config.get("augment", "none")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augment {self.augmentation!r} (known: {', '.join(AUGMENTATIONS)})"
            )
        self.crop_scale = float(config.get("crop_scale", 0.6))
        self.label_smoothing = float(config.get("label_smoothing", 0.0))
        self.report_clips = int(config.get("report_clips", 500))  # TFLite report's test clips
        self.mirror = tf.constant(mirrored_labels(self.class_names), tf.int64)

    @property
    def video_shape(self):
        return (self.frames, *self.image_size, self.channels)

    def model_overrides(self):
        return {"input_shape": self.video_shape, "num_classes": self.num_classes}

    # -- inputs ------------------------------------------------------------------------------
    def preprocess(self, example):
        """The middle `clip_frames` frames (looped if the video is shorter), resized; uint8."""
        video = example[self.video_key]
        length = tf.shape(video)[0]
        start = tf.maximum(0, (length - self.clip_frames) // 2)
        video = tf.gather(video, (start + tf.range(self.clip_frames)) % length)
        if tuple(video.shape[1:3]) != self.image_size:
            resized = tf.image.resize(video, self.image_size, antialias=True)
            video = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
        video = tf.ensure_shape(video, (self.clip_frames, *self.image_size, self.channels))
        return video, tf.cast(example[self.label_key], tf.int64)

    def sample_frames(self, videos, start=None):
        """`frames` frames `frame_stride` apart from `start` (default: the middle ones) of clips
        [N,L,H,W,C] (or one clip [L,H,W,C] with `start`); clips of `frames` frames are already
        sampled (a window is never that short unless the stride is 1)."""
        span = (self.frames - 1) * self.frame_stride + 1
        if start is None:
            if videos.shape[1] == self.frames:  # already sampled (by the augmentation)
                return videos
            start = (videos.shape[1] - span) // 2
            return tf.gather(videos, start + self.frame_stride * tf.range(self.frames), axis=1)
        return tf.gather(videos, start + self.frame_stride * tf.range(self.frames), axis=0)

    @property
    def augment(self):
        if self.augmentation == "none":
            return None
        span = (self.frames - 1) * self.frame_stride + 1
        height, width = self.image_size

        def augment(video, label, seed):
            if self.augmentation == "crop_flip":
                start = tf.random.stateless_uniform(
                    [], seed=seed + 2, maxval=self.clip_frames - span + 1, dtype=tf.int32
                )
                video = self.sample_frames(video, start)
                video = self._resized_crop(video, seed + 3)
            flip = tf.random.stateless_uniform([], seed=seed + 1) < 0.5
            video = tf.cond(flip, lambda: tf.reverse(video, axis=[2]), lambda: video)
            label = tf.where(flip, tf.gather(self.mirror, label), label)
            return video, label

        return augment

    def _resized_crop(self, video, seed):
        """The same random box (side `crop_scale`..1 of each axis) of every frame, resized back."""
        height, width = self.image_size
        u = tf.random.stateless_uniform([4], seed=seed)
        side = self.crop_scale + (1.0 - self.crop_scale) * u[:2]
        h = tf.cast(tf.round(side[0] * height), tf.int32)
        w = tf.cast(tf.round(side[1] * width), tf.int32)
        y = tf.cast(u[2] * tf.cast(height - h + 1, tf.float32), tf.int32)
        x = tf.cast(u[3] * tf.cast(width - w + 1, tf.float32), tf.int32)
        crop = video[:, y : y + h, x : x + w, :]
        resized = tf.image.resize(crop, self.image_size)
        video = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
        return tf.ensure_shape(video, (self.frames, height, width, self.channels))

    # -- steps -------------------------------------------------------------------------------
    def model_input(self, videos):
        """The frames the model sees, as floats (the cache and the augmentation keep uint8)."""
        return tf.cast(self.sample_frames(videos), tf.float32)

    # -- what the run shows and leaves behind ------------------------------------------------
    def log_epoch(self, model, sample, totals, step):
        videos, labels = sample
        videos = self.model_input(tf.constant(videos[: self.strip_clips])).numpy()
        labels = labels[: self.strip_clips]
        predicted = np.argmax(np.asarray(model(videos, training=False)), axis=-1)
        titles = [
            f"predicted {self.class_names[p]}, true {self.class_names[t]}"
            for p, t in zip(predicted, labels)
        ]
        colors = ["black" if p == t else "red" for p, t in zip(predicted, labels)]
        summaries.image("clips", strips(videos, titles, colors, self.strip_frames), step)
        if "confusion" in totals:
            picture = summaries.confusion_matrix_image(totals["confusion"], self.class_names)
            summaries.image("confusion_matrix", picture, step)

    def calibration(self, train, test):
        def clips(ds, n):
            pairs = list(ds.take(n).as_numpy_iterator())
            videos = self.model_input(tf.constant(np.stack([v for v, _ in pairs]))).numpy()
            return videos.astype(np.uint8), np.array([y for _, y in pairs])

        representative, _ = clips(train.shuffle(1024, seed=0), 100)
        x_test, y_test = clips(test, self.report_clips)
        return {"representative": representative, "x_test": x_test, "y_test": y_test}

    def export_info(self):
        return {"class_names": self.class_names, "video_shape": list(self.video_shape)}


_FONT = ImageFont.load_default()


def strips(videos, titles, colors, frames=8, cell=56) -> np.ndarray:
    """One row per clip: `frames` of its frames (evenly spaced) side by side, under its title."""
    count, length = videos.shape[:2]
    chosen = np.linspace(0, length - 1, min(frames, length)).round().astype(int)
    title_h = 14
    canvas = Image.new("RGB", (len(chosen) * cell, count * (cell + title_h)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, video in enumerate(videos):
        y = i * (cell + title_h)
        draw.text((3, y + 1), titles[i], fill=colors[i], font=_FONT)
        for j, frame in enumerate(summaries.to_uint8(video[chosen])):
            picture = Image.fromarray(frame).resize((cell - 2, cell - 2), Image.NEAREST)
            canvas.paste(picture, (j * cell + 1, y + title_h + 1))
    return np.asarray(canvas)

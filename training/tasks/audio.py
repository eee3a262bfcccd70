"""Audio classification: a recording -> a class (spoken digits, keywords). The steps, metrics and
confusion matrix are image classification's; what differs is the input: a split's `audio`
(int64 16-bit PCM values, as tfds' audio data sets and `folder:` give them) becomes a float
waveform in -1..1 centred in `clip_seconds` (zoo/audio/frontend.py `fit_length`), and training
clips are perturbed in tf.data before the model's own front end and SpecAugment see them:

- `speed`: resampled by a factor in 1 +- speed (tempo and pitch together, Kaldi's speed
  perturbation; linear interpolation);
- `shift`: moved by up to `shift` seconds either way (silence fills in);
- `gain_db`: louder or quieter by up to that many dB;
- `noise`: white noise at a signal-to-noise ratio drawn from `noise` (dB, low and high).

Each epoch TensorBoard shows test clips' log-mels captioned with the predicted and true class,
and the confusion matrix.
"""

import numpy as np
import tensorflow as tf

from training import summaries
from training.tasks.base import Task
from training.tasks.classification import Classification
from zoo.audio.frontend import fit_length


class AudioClassification(Classification):
    name = "audio_classification"
    image_key = "audio"
    spectrograms = 16  # test clips drawn each epoch

    def __init__(self, config, source):
        Task.__init__(self, config, source)  # not an image's settings: a recording's, below
        if "audio" not in source.features.keys():
            raise ValueError(f"{source.name} has no `audio` feature (an audio task needs one)")
        self.class_names = source.class_names
        self.num_classes = len(self.class_names)
        self.label_smoothing = float(config.get("label_smoothing", 0.0))
        self.sample_rate = int(source.features["audio"].sample_rate or config.get("sample_rate"))
        self.clip_samples = int(round(float(config.get("clip_seconds", 1.0)) * self.sample_rate))
        self.image_shape = (self.clip_samples,)  # what calibration and export_info read
        self.speed = float(config.get("speed", 0.0))
        self.shift = float(config.get("shift", 0.0))
        self.gain_db = float(config.get("gain_db", 0.0))
        noise = config.get("noise")
        self.noise = tuple(map(float, noise)) if noise else None

    def model_overrides(self):
        return {
            "input_shape": (self.clip_samples,),
            "num_classes": self.num_classes,
            "sampling_rate": self.sample_rate,
        }

    def preprocess(self, example):
        waveform = tf.cast(example["audio"], tf.float32) / 32768.0
        return fit_length(waveform, self.clip_samples), example["label"]

    @property
    def augment(self):
        if not (self.speed or self.shift or self.gain_db or self.noise):
            return None

        def augment(waveform, label, seed):
            u = tf.random.stateless_uniform([5], seed=seed, minval=-1.0, maxval=1.0)
            if self.speed:  # the clip is centred: what a slower one loses at its ends is silence
                n = float(self.clip_samples)
                length = tf.cast(n / (1.0 + u[0] * self.speed), tf.int32)
                waveform = tf.image.resize(waveform[None, :, None, None], [length, 1])[0, :, 0, 0]
                waveform = fit_length(waveform, self.clip_samples)
            if self.shift:
                moved = tf.cast(u[1] * self.shift * self.sample_rate, tf.int32)
                pad = tf.abs(moved)
                padded = tf.pad(waveform, [[pad, pad]])
                waveform = padded[pad - moved : pad - moved + self.clip_samples]
            if self.gain_db:
                waveform *= 10.0 ** (u[2] * self.gain_db / 20.0)
            if self.noise:
                low, high = self.noise
                snr = low + (u[3] + 1.0) / 2.0 * (high - low)
                power = tf.reduce_mean(tf.square(waveform)) + 1e-10
                std = tf.sqrt(power / 10.0 ** (snr / 10.0))
                noise = tf.random.stateless_normal(tf.shape(waveform), seed=seed + 1)
                waveform += std * noise
            return tf.ensure_shape(waveform, [self.clip_samples]), label

        return augment

    def log_epoch(self, model, sample, totals, step):
        waveforms, labels = sample
        waveforms = waveforms[: self.spectrograms]
        labels = labels[: self.spectrograms]
        predicted = np.argmax(np.asarray(model(waveforms, training=False)), axis=-1)
        features = np.asarray(model.get_layer("log_mel")(waveforms))[..., 0]  # [N, frames, bins]
        low, high = features.min(), features.max()
        pictures = (features - low) / max(high - low, 1e-6) * 255.0
        pictures = np.flip(np.swapaxes(pictures, 1, 2), axis=1)[..., None]  # low bins at bottom
        names = self.class_names
        captions = [
            f"{names[p]} ({names[t]})" if p != t else names[p] for p, t in zip(predicted, labels)
        ]
        colors = ["black" if p == t else "red" for p, t in zip(predicted, labels)]
        summaries.image("predictions", summaries.grid(pictures, captions, colors, 4, 120), step)
        if "confusion" in totals:
            picture = summaries.confusion_matrix_image(totals["confusion"], names)
            summaries.image("confusion_matrix", picture, step)

    def export_info(self):
        return {
            "class_names": self.class_names,
            "clip_samples": self.clip_samples,
            "sample_rate": self.sample_rate,
            # the front end (zoo/audio/frontend.py) stays float in the int8 TFLite file
            "tflite_float_layers": ["log_mel"],
        }

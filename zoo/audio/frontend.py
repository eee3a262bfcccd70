"""The audio front end as Keras layers, so a model (and its export) takes the raw waveform.

- `LogMel`: waveform float32 [N,samples] (-1..1) -> log-mel spectrogram [N,frames,bins,1]
  (Keras' MelSpectrogram, magnitude squared, then log(mel + 1e-6)); `mfcc` > 0 keeps that many
  cepstral coefficients instead (a DCT-II of the log-mels, as Hello Edge's MFCC features);
  `normalize` standardizes the features per utterance, keeping a speaker's channel and loudness
  out of them: "bins" every bin over the utterance's frames (cepstral mean and variance
  normalization), "utterance" all of them with one mean and variance, False not at all.
  `top_db` > 0 floors the log-mels at that many dB below the utterance's peak, so the digital
  silence a clip is padded with and a recording's own hiss read alike (librosa's `top_db`).
  Keras' own `power_to_db` is not used: it clips at the *batch's* maximum, so an example's
  features would depend on what it is batched with.
- `warp` > 0: vocal tract length perturbation in training only (VTLP, Jaitly & Hinton 2013):
  each utterance's power spectrum is stretched along frequency by a factor drawn from
  [1 - warp, 1 + warp] before the mel filters (piecewise linear, so the Nyquist frequency stays
  put), as if a speaker with a longer or shorter vocal tract had said it. Inference is unwarped.
- `SpecAugment` (Park et al. 2019): in training only, `time_masks` bands of up to `time_width`
  frames and `freq_masks` bands of up to `freq_width` bins set to zero (the normalized mean).
- `fit_length`: a waveform centred in `length` samples (cropped about its middle, or padded with
  silence on both sides), what training and the exported bytes signature both do to a recording.
"""

import math

import keras
import numpy as np
from keras import layers, ops


def fit_length(waveform, length):
    """[..., n] -> [..., length]: the middle `length` samples, or the waveform in the middle of
    `length` (zeros either side). Works on any backend's tensors, and inside tf.data."""
    n = ops.shape(waveform)[-1]
    start = ops.maximum((n - length) // 2, 0)
    cropped = waveform[..., start : start + length]
    missing = length - ops.shape(cropped)[-1]
    before = missing // 2
    pad = [[0, 0]] * (len(waveform.shape) - 1) + [[before, missing - before]]
    return ops.pad(cropped, pad)


def dct_matrix(bins, coefficients):
    """The orthonormal DCT-II matrix [bins, coefficients]: log-mels @ it = MFCCs."""
    n = np.arange(bins)[:, None]
    k = np.arange(coefficients)[None, :]
    matrix = np.cos(math.pi / bins * (n + 0.5) * k) * math.sqrt(2.0 / bins)
    matrix[:, 0] /= math.sqrt(2.0)
    return matrix.astype("float32")


@keras.saving.register_keras_serializable(package="zoo")
class LogMel(layers.Layer):
    def __init__(
        self,
        sampling_rate=16000,
        frame_ms=25.0,
        hop_ms=10.0,
        num_mel_bins=40,
        mfcc=0,
        normalize=True,
        min_freq=20.0,
        warp=0.0,
        top_db=0.0,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.warp, self.seed, self.top_db = float(warp), seed, float(top_db)
        # a seed state only where it is used, so unwarped models keep their variables
        self.generator = keras.random.SeedGenerator(seed) if self.warp else None
        self.sampling_rate, self.frame_ms, self.hop_ms = sampling_rate, frame_ms, hop_ms
        self.num_mel_bins, self.mfcc, self.normalize, self.min_freq = (
            num_mel_bins,
            mfcc,
            normalize,
            min_freq,
        )
        frame = int(round(sampling_rate * frame_ms / 1000))
        self.hop = int(round(sampling_rate * hop_ms / 1000))
        self.mel = layers.MelSpectrogram(
            fft_length=1 << (frame - 1).bit_length(),
            sequence_length=frame,
            sequence_stride=self.hop,
            sampling_rate=sampling_rate,
            num_mel_bins=num_mel_bins,
            min_freq=min_freq,
            max_freq=sampling_rate / 2,
            power_to_db=False,
            dtype="float32",
            name=f"{self.name}_mel",
        )
        self.dct = dct_matrix(num_mel_bins, mfcc) if mfcc else None
        self.frame, self.fft_length = frame, 1 << (frame - 1).bit_length()

    def build(self, input_shape):
        self.mel.build(input_shape)  # no weights: the mel filters are computed in the graph
        super().build(input_shape)

    def frames(self, samples):
        return samples // self.hop + 1  # stft with centre padding

    def warped_mel(self, waveform, alpha):
        """[N, frames, bins] mel energies of each utterance's spectrum stretched by its factor
        `alpha` [N]: the energy at frequency f moves to alpha*f below a knee at 0.9 Nyquist
        * min(alpha, 1), and linearly from there to the Nyquist frequency, which stays put."""
        real, imag = ops.stft(
            waveform, self.frame, self.hop, self.fft_length, window="hann", center=True
        )
        power = real * real + imag * imag  # [N, frames, K], as MelSpectrogram's (mag_exp 2)
        k = power.shape[-1]
        top = float(k - 1)
        alpha = ops.reshape(ops.cast(alpha, "float32"), (-1, 1, 1))
        knee = 0.9 * top * ops.minimum(alpha, 1.0) / alpha
        target = ops.cast(ops.arange(k), "float32")[None, None, :]  # bin g of the warped
        # the source bin whose energy lands on g: the inverse of the piecewise linear warp
        source = ops.where(
            target <= alpha * knee,
            target / alpha,
            knee + (target - alpha * knee) * (top - knee) / (top - alpha * knee),
        )  # [N, 1, K]
        bins = ops.cast(ops.arange(k), "float32")[None, :, None]  # [1, K, 1]
        # linear interpolation as a matrix: warped[g] = sum_j power[j] * hat(j - source[g])
        interpolate = ops.maximum(0.0, 1.0 - ops.abs(bins - source))  # [N, K(j), K(g)]
        mel = ops.convert_to_tensor(
            self.mel.linear_to_mel_weight_matrix(
                self.num_mel_bins, k, self.sampling_rate, self.min_freq, self.sampling_rate / 2
            )
        )  # [K, bins]
        filters = ops.einsum("njg,gm->njm", interpolate, mel)
        return ops.einsum("ntj,njm->ntm", power, filters)

    def call(self, waveform, training=False):
        waveform = ops.cast(waveform, "float32")
        if training and self.warp:
            alpha = keras.random.uniform(
                ops.shape(waveform)[:1], 1 - self.warp, 1 + self.warp, seed=self.generator
            )
            features = ops.log(self.warped_mel(waveform, alpha) + 1e-6)
        else:
            mel = self.mel(waveform)  # [N, bins, frames]
            features = ops.log(ops.transpose(mel, (0, 2, 1)) + 1e-6)
        if self.top_db:
            peak = ops.max(features, axis=(1, 2), keepdims=True)
            features = ops.maximum(features, peak - self.top_db * math.log(10.0) / 10.0)
        if self.dct is not None:
            features = ops.matmul(features, ops.convert_to_tensor(self.dct))
        if self.normalize:
            axes = (1, 2) if self.normalize == "utterance" else 1
            mean = ops.mean(features, axis=axes, keepdims=True)
            std = ops.sqrt(ops.var(features, axis=axes, keepdims=True) + 1e-5)
            features = (features - mean) / std
        return ops.cast(ops.expand_dims(features, -1), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[-1] is None else self.frames(input_shape[-1])
        return (input_shape[0], frames, self.mfcc or self.num_mel_bins, 1)

    def get_config(self):
        return {
            **super().get_config(),
            "sampling_rate": self.sampling_rate,
            "frame_ms": self.frame_ms,
            "hop_ms": self.hop_ms,
            "num_mel_bins": self.num_mel_bins,
            "mfcc": self.mfcc,
            "normalize": self.normalize,
            "min_freq": self.min_freq,
            "warp": self.warp,
            "top_db": self.top_db,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="zoo")
class SpecAugment(layers.Layer):
    def __init__(self, time_masks=2, time_width=10, freq_masks=2, freq_width=5, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.time_masks, self.time_width = time_masks, time_width
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def _masks(self, count, width, size, batch):
        """[N, size] 1 where none of `count` random bands of up to `width` covers."""
        keep = ops.ones((batch, size))
        positions = ops.arange(size)[None, :]
        for _ in range(count):
            w = keras.random.randint((batch, 1), 0, width + 1, seed=self.generator)
            start = keras.random.randint((batch, 1), 0, size, seed=self.generator)
            band = (positions >= start) & (positions < start + w)
            keep = keep * ops.cast(~band, keep.dtype)
        return keep

    def call(self, features, training=False):
        if not training:
            return features
        batch, frames, bins = ops.shape(features)[0], features.shape[1], features.shape[2]
        keep_t = self._masks(self.time_masks, self.time_width, frames, batch)
        keep_f = self._masks(self.freq_masks, self.freq_width, bins, batch)
        keep = keep_t[:, :, None, None] * keep_f[:, None, :, None]
        return features * ops.cast(keep, features.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "time_masks": self.time_masks,
            "time_width": self.time_width,
            "freq_masks": self.freq_masks,
            "freq_width": self.freq_width,
            "seed": self.seed,
        }


# the front end's options and their defaults (an audio model's `front` dict overrides them)
FRONT_END = {
    "features": "log_mel",
    "num_mel_bins": 40,
    "mfcc": 13,
    "frame_ms": 25.0,
    "hop_ms": 10.0,
    "spec_augment": True,
    "normalize": "bins",
    "vtlp": 0.0,
    "top_db": 0.0,
}


def front_end(waveform, sampling_rate, **options):
    """What every audio model starts with: the waveform's log-mels (or MFCCs, `features="mfcc"`),
    normalized per utterance, VTLP-warped (`vtlp`: the largest relative warp; 0: none) and
    SpecAugmented in training. Layers `log_mel`, `spec_augment`. `options`: FRONT_END's keys;
    the audio models take them as one dict, `front` (`--set model.overrides.front.vtlp=0.1`)."""
    unknown = sorted(set(options) - set(FRONT_END))
    if unknown:
        raise ValueError(
            f"unknown audio front-end option(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(FRONT_END)})"
        )
    o = {**FRONT_END, **options}
    features, spec_augment = o["features"], o["spec_augment"]
    if features not in ("log_mel", "mfcc"):
        raise ValueError(f"unknown audio features {features!r} (known: log_mel, mfcc)")
    x = LogMel(
        sampling_rate=sampling_rate,
        frame_ms=o["frame_ms"],
        hop_ms=o["hop_ms"],
        num_mel_bins=o["num_mel_bins"],
        mfcc=o["mfcc"] if features == "mfcc" else 0,
        normalize=o["normalize"],
        warp=o["vtlp"],
        top_db=o["top_db"],
        name="log_mel",
    )(waveform)
    if spec_augment:
        x = SpecAugment(
            **(spec_augment if isinstance(spec_augment, dict) else {}), name="spec_augment"
        )(x)
    return x

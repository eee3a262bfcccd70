"""The audio front end's vocal tract length perturbation (VTLP), its dynamic-range floor and
its options dict."""

import numpy as np
import pytest

import zoo
from zoo.audio.frontend import LogMel

RATE = 8000


def tone(hz, seconds=0.5):
    t = np.arange(int(RATE * seconds)) / RATE
    return np.sin(2 * np.pi * hz * t).astype("float32")[None]


def test_unwarped_training_features_equal_inference():
    x = np.random.default_rng(0).normal(size=(2, 4000)).astype("float32") * 0.1
    layer = LogMel(sampling_rate=RATE, mfcc=13, normalize="bins", warp=1e-7)
    trained, served = layer(x, training=True), layer(x, training=False)
    np.testing.assert_allclose(np.asarray(trained), np.asarray(served), atol=1e-3)


@pytest.mark.parametrize("alpha", [0.85, 1.15])
def test_warp_moves_a_tone_by_alpha(alpha):
    """A 1 kHz tone warped by alpha has its mel peak where an alpha kHz tone has it."""
    layer = LogMel(sampling_rate=RATE, num_mel_bins=80, normalize=False, warp=0.2)
    warped = np.asarray(layer.warped_mel(tone(1000), np.array([alpha])))[0, 10]
    moved = np.asarray(layer(tone(1000 * alpha), training=False))[0, 10, :, 0]
    unmoved = np.asarray(layer(tone(1000), training=False))[0, 10, :, 0]
    assert abs(int(warped.argmax()) - int(moved.argmax())) <= 1
    assert abs(int(warped.argmax()) - int(unmoved.argmax())) >= 2


def test_training_draws_a_warp_per_utterance_and_inference_none():
    layer = LogMel(sampling_rate=RATE, num_mel_bins=80, normalize=False, warp=0.15)
    clips = np.repeat(tone(1000), 8, axis=0)
    peaks = np.asarray(layer(clips, training=True))[:, 10, :, 0].argmax(1)
    assert len(set(peaks.tolist())) > 1
    served = np.asarray(layer(clips, training=False))[:, 10, :, 0].argmax(1)
    assert len(set(served.tolist())) == 1


def test_floor_keeps_top_db_below_each_utterance_peak():
    x = np.concatenate([np.zeros((2, 2000)), tone(500)[:, :2000].repeat(2, 0)], 1)
    x[1] *= 0.01  # 40 dB quieter: the floor follows the utterance's own peak
    features = np.asarray(LogMel(sampling_rate=RATE, normalize=False, top_db=30)(x))[..., 0]
    span = features.max(axis=(1, 2)) - features.min(axis=(1, 2))
    np.testing.assert_allclose(span, 30 * np.log(10) / 10, rtol=1e-4)
    unfloored = np.asarray(LogMel(sampling_rate=RATE, normalize=False)(x))[..., 0]
    assert (unfloored.max(axis=(1, 2)) - unfloored.min(axis=(1, 2)) > 10).all()  # 43+ dB


def test_floored_features_read_silence_and_hiss_alike():
    """A burst padded with zeros or with hiss 60 dB below it: floored 40 dB below the peak, the
    normalized features are the same; unfloored, the padding sets them."""
    rng = np.random.default_rng(0)
    burst = np.pad(rng.normal(size=2400) * 0.1, 1600)[None].astype("float32")
    hissed = burst + (rng.normal(size=burst.shape) * 1e-4).astype("float32")

    def features(top_db, x):
        return np.asarray(LogMel(sampling_rate=RATE, mfcc=13, normalize="bins", top_db=top_db)(x))

    np.testing.assert_allclose(features(40, burst), features(40, hissed), atol=0.02)
    assert np.abs(features(0, burst) - features(0, hissed)).max() > 1.0


def test_models_take_front_end_options_as_one_dict():
    model = zoo.build(
        "ds_cnn",
        tiny=True,
        input_shape=(4000,),
        sampling_rate=RATE,
        front={"features": "mfcc", "vtlp": 0.1},
    )
    assert model.get_layer("log_mel").mfcc == 10 and model.get_layer("log_mel").warp == 0.1
    with pytest.raises(ValueError, match="front-end option.*'hop'"):
        zoo.build("crnn", tiny=True, front={"hop": 20})

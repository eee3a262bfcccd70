"""The audio front end's vocal tract length perturbation (VTLP) and its options dict."""

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

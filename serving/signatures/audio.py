"""Signatures of audio classifiers (keyword spotting, spoken digits): the front end is in the
model, so both take sound, not features."""

import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder
from zoo.audio.frontend import fit_length


@signature_builder("audio_classification")
def audio_classification(archive, model, info):
    """serving_default: waveform float32 [N,L] (-1..1, L the model's clip length) ->
    probabilities; what TFLite converts. classify_audio_bytes: WAV files [N] (16-bit PCM, mono or
    the first channel, at the model's sample rate, any length) -> classes, labels, probabilities;
    each recording is centred in the clip as in training (cropped or padded with silence). A
    recording at another sample rate is refused (InvalidArgument: a 400 from the server)."""
    length, rate = int(info["clip_samples"]), int(info["sample_rate"])
    names = tf.constant([str(n) for n in info["class_names"]])

    def serve(waveform):
        return {"probabilities": tf.cast(model(waveform, training=False), tf.float32)}

    def decode(wav):
        waveform, found = tf.audio.decode_wav(wav, desired_channels=1)
        check = tf.debugging.assert_equal(
            found, rate, message=f"the model takes WAV audio at {rate} Hz"
        )
        with tf.control_dependencies([check]):
            return fit_length(waveform[:, 0], length)

    def classify_audio_bytes(audio_bytes):
        waveforms = tf.map_fn(
            decode, audio_bytes, fn_output_signature=tf.TensorSpec([length], tf.float32)
        )
        probabilities = serve(waveforms)["probabilities"]
        classes = tf.argmax(probabilities, axis=-1)
        return {
            "classes": classes,
            "labels": tf.gather(names, classes),
            "probabilities": probabilities,
        }

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, length], tf.float32, name="waveform")],
    )
    archive.add_endpoint(
        "classify_audio_bytes",
        classify_audio_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="audio_bytes")],
    )
    return {"waveform": np.zeros([1, length], np.float32)}

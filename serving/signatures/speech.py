"""Signatures of speech recognizers (CTC): the front end is in the model, so both take sound.

The CTC decoding of `transcribe_audio_bytes` is TensorFlow's (tf.nn.ctc_beam_search_decoder,
tf.nn.ctc_greedy_decoder), the blank the last class, as in training/tasks/speech_recognition.py.
"""

import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder


@signature_builder("speech_recognition")
def speech_recognition(archive, model, info):
    """serving_default: waveform float32 [N,L] (-1..1, L the model's clip length, the recording
    at the start and zeros after it) -> probabilities [N,T,K] per frame; what TFLite converts.
    transcribe_audio_bytes: WAV files [N] (16-bit PCM, mono or the first channel, at the model's
    sample rate, up to its clip length) -> text (beam search) and greedy_text, tokens joined by
    spaces. Another sample rate or a longer recording is refused (InvalidArgument: a 400)."""
    length, rate = int(info["clip_samples"]), int(info["sample_rate"])
    tokens = tf.constant([str(t) for t in info["tokens"]])
    beam_width = int(info.get("beam_width", 8))

    def serve(waveform):
        logits = tf.cast(model(waveform, training=False), tf.float32)
        return {"probabilities": tf.nn.softmax(logits, axis=-1)}

    def decode(wav):
        waveform, found = tf.audio.decode_wav(wav, desired_channels=1)
        checks = [
            tf.debugging.assert_equal(
                found, rate, message=f"the model takes WAV audio at {rate} Hz"
            ),
            tf.debugging.assert_less_equal(
                tf.shape(waveform)[0],
                length,
                message=f"the model takes recordings of up to {length / rate:g} s",
            ),
        ]
        with tf.control_dependencies(checks):
            samples = waveform[:, 0]
            return tf.pad(samples, [[0, length - tf.shape(samples)[0]]])

    def text_of(decoded):
        ragged = tf.RaggedTensor.from_sparse(decoded)
        return tf.strings.reduce_join(tf.gather(tokens, ragged), axis=-1, separator=" ")

    def transcribe_audio_bytes(audio_bytes):
        waveforms = tf.map_fn(
            decode, audio_bytes, fn_output_signature=tf.TensorSpec([length], tf.float32)
        )
        logits = tf.cast(model(waveforms, training=False), tf.float32)
        time_major = tf.transpose(logits, (1, 0, 2))
        frames = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
        beam, _ = tf.nn.ctc_beam_search_decoder(time_major, frames, beam_width, top_paths=1)
        greedy, _ = tf.nn.ctc_greedy_decoder(time_major, frames, merge_repeated=True)
        return {"text": text_of(beam[0]), "greedy_text": text_of(greedy[0])}

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, length], tf.float32, name="waveform")],
    )
    archive.add_endpoint(
        "transcribe_audio_bytes",
        transcribe_audio_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="audio_bytes")],
    )
    return {"waveform": np.zeros([1, length], np.float32)}

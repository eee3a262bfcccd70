"""Signatures of image captioning models (zoo/multimodal/captioning.py).

- serving_default: images float32 [N,H,W,C] (0..255, the model's input size) -> `tokens` int32
  [N,L], the greedy caption's wordpiece ids (after [START], up to and including [END], zeros
  after; L = export_info's caption_length). The decoding loop is in the graph (a tf.while_loop
  over the caption decoder, the image encoded once); this is the signature TFLite converts.
- caption_image_bytes: image_bytes string [N] (PNG/JPEG, any size: resized to the model's),
  beam_size int32 (1..MAX_BEAM; 1 is greedy), max_length int32 (1..L tokens) -> `caption`
  string [N], by beam search in the graph (textkit.beam_decode) and detokenized with the
  training vocabulary. Over REST the scalars go in the columnar `inputs` form:
  {"signature_name": "caption_image_bytes", "inputs": {"image_bytes": [{"b64": ...}],
  "beam_size": 3, "max_length": 8}}.

TFLite converts serving_default's loop only where every op in it is a builtin: Keras' LSTM with
a dynamic batch is not (tf.TensorListReserve), so the neuraltalk recipes build theirs unrolled
(`unroll=True`, same weights, fixed caption_length).

The wordpiece detokenizer needs tensorflow_text's ops at load time (`import tensorflow_text`).
"""

import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder
from textkit import END, START, WordpieceTokenizer, beam_decode, greedy_decode
from zoo.multimodal.captioning import encoder_decoder

MAX_BEAM = 16


@signature_builder("captioning")
def captioning(archive, model, info):
    """serving_default: pixels -> greedy caption ids; caption_image_bytes: bytes -> caption."""
    shape = list(info["image_shape"])
    length = int(info["caption_length"])
    vocab = info["vocab"]
    start, end = vocab.index(START), vocab.index(END)
    tokenizer = WordpieceTokenizer(vocab, info.get("lower_case", True))
    archive.track(tokenizer)
    encoder, decoder = encoder_decoder(model)

    def serve(images):
        tokens = greedy_decode(decoder, images, length, start, end, encoder=encoder)
        return {"tokens": tokens}

    def decode(data):
        image = tf.io.decode_image(data, channels=shape[-1], expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), shape[:2])

    def caption_image_bytes(image_bytes, beam_size, max_length):
        checks = [
            tf.debugging.assert_greater_equal(beam_size, 1, message="beam_size must be >= 1"),
            tf.debugging.assert_less_equal(
                beam_size, MAX_BEAM, message=f"beam_size must be <= {MAX_BEAM}"
            ),
            tf.debugging.assert_greater_equal(max_length, 1, message="max_length must be >= 1"),
            tf.debugging.assert_less_equal(
                max_length, length, message=f"max_length must be <= {length} (caption_length)"
            ),
        ]
        with tf.control_dependencies(checks):  # before anything reads them
            beam_size, max_length = tf.identity(beam_size), tf.identity(max_length)
            images = tf.map_fn(
                decode, image_bytes, fn_output_signature=tf.TensorSpec(shape, tf.float32)
            )
        ids = beam_decode(
            decoder,
            images,
            length,
            start,
            end,
            beam_size=beam_size,
            max_length=max_length,
            alpha=float(info.get("length_penalty", 0.0)),
            encoder=encoder,
        )
        return {"caption": tokenizer.detokenize(ids)}

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="images")],
    )
    archive.add_endpoint(
        "caption_image_bytes",
        caption_image_bytes,
        input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes"),
            tf.TensorSpec([], tf.int32, name="beam_size"),
            tf.TensorSpec([], tf.int32, name="max_length"),
        ],
    )
    return {"images": np.zeros([1, *shape], np.float32)}

"""Signatures of text models: raw strings in and out, tokenization inside the graph.

A run's export_info.json carries the vocabulary: the characters of a character language model,
the wordpieces of the others. textkit's tokenizers rebuild tokenization from that list as graph
ops, the same ones the training tasks used, so the SavedModel takes text.

`serving_default` is always the token-tensor signature that TFLite converts (fixed length; an LSTM
model is exported unrolled, the same weights as a static graph); the string signatures are for
SavedModel / TF Serving:

- language_model:      serving_default tokens int32 [N, T] -> logits [N, T, V];
                       generate: prompt string (scalar or [N]), max_new_tokens int32,
                       temperature float32 (0: greedy), seed int64 -> text, completion
- text_classification: serving_default tokens int32 [N, T] -> probabilities;
                       predict_text: text string [N] -> classes, labels, probabilities
- masked_language_model: serving_default tokens int32 [N, T] -> logits [N, T, V];
                       fill_mask: text string [N] with "[MASK]"s -> text with them filled
- seq2seq:             serving_default encoder_tokens int32 [N, S], decoder_tokens int32 [N, T]
                       -> logits; translate: text string [N] -> translation string [N] (greedy)

Wordpiece exports need tensorflow_text's ops at load time: `import tensorflow_text` before
`tf.saved_model.load`.
"""

import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder
from textkit import CLS, END, MASK, SEP, START, Generator, WordpieceTokenizer, greedy_decode, pack
from zoo.sequence import call_on_tokens, unrolled


def _token_spec(length, name="tokens"):
    return tf.TensorSpec([None, length], tf.int32, name=name)


# ---- signatures per task kind -----------------------------------------------------------------


@signature_builder("language_model")
def language_model(archive, model, info):
    """serving_default: tokens -> logits; generate: prompt -> text (see the module docstring)."""
    length = int(info["seq_len"])
    served = unrolled(model)
    generator = Generator(model, info["chars"], context=length)
    for resource in (served, generator, generator.tokenizer, generator.step):
        if resource is not None:
            archive.track(resource)

    def serve(tokens):
        return {"logits": tf.cast(served(tokens, training=False), tf.float32)}

    archive.add_endpoint("serving_default", serve, input_signature=[_token_spec(length)])
    archive.add_endpoint(
        "generate",
        generator.generate,
        input_signature=[
            tf.TensorSpec(None, tf.string, name="prompt"),
            tf.TensorSpec([], tf.int32, name="max_new_tokens"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ],
    )
    return {"tokens": np.zeros([1, length], np.int32)}


@signature_builder("text_classification")
def text_classification(archive, model, info):
    """serving_default: tokens -> probabilities; predict_text: text -> classes, labels,
    probabilities."""
    length = int(info["seq_len"])
    vocab = info["vocab"]
    tokenizer = WordpieceTokenizer(vocab, info.get("lower_case", True))
    served = unrolled(model)
    archive.track(tokenizer)
    archive.track(served)
    names = tf.constant([str(n) for n in info["class_names"]])
    cls, sep = vocab.index(CLS), vocab.index(SEP)

    def serve(tokens):
        return {"probabilities": tf.cast(call_on_tokens(served, tokens), tf.float32)}

    def predict_text(text):
        tokens = pack(tokenizer.tokenize(text), length, cls, sep)
        probabilities = serve(tokens)["probabilities"]
        classes = tf.argmax(probabilities, axis=-1)
        return {
            "classes": classes,
            "labels": tf.gather(names, classes),
            "probabilities": probabilities,
        }

    archive.add_endpoint("serving_default", serve, input_signature=[_token_spec(length)])
    archive.add_endpoint(
        "predict_text", predict_text, input_signature=[tf.TensorSpec([None], tf.string, "text")]
    )
    return {"tokens": np.zeros([1, length], np.int32)}


@signature_builder("masked_language_model")
def masked_language_model(archive, model, info):
    """serving_default: tokens -> logits; fill_mask: text with [MASK]s -> text with the model's
    most likely wordpiece in each."""
    length = int(info["seq_len"])
    vocab = info["vocab"]
    tokenizer = WordpieceTokenizer(vocab, info.get("lower_case", True))
    archive.track(tokenizer)
    cls, sep, mask = vocab.index(CLS), vocab.index(SEP), vocab.index(MASK)

    def serve(tokens):
        return {"logits": tf.cast(call_on_tokens(model, tokens), tf.float32)}

    def fill_mask(text):
        pieces = tf.strings.split(text, MASK)  # [N, (pieces)]
        ids = tokenizer.tokenize(pieces.flat_values)  # [all pieces, (n)]
        # a [MASK] after every piece but the last of each text
        last = tf.cast(tf.range(ids.nrows()) + 1, tf.int64)
        is_last = tf.reduce_any(last[:, None] == pieces.row_limits()[None, :], axis=1)
        marks = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(~is_last, tf.int32))], mask),
            tf.cast(~is_last, tf.int64),
        )
        ids = tf.concat([ids, marks], axis=1)
        ids = tf.RaggedTensor.from_row_splits(ids, pieces.row_splits).merge_dims(1, 2)
        tokens = pack(ids, length, cls, sep)
        predicted = tf.argmax(serve(tokens)["logits"], axis=-1, output_type=tf.int32)
        filled = tf.where(tf.equal(tokens, mask), predicted, tokens)
        return {"text": tokenizer.detokenize(filled)}

    archive.add_endpoint("serving_default", serve, input_signature=[_token_spec(length)])
    archive.add_endpoint(
        "fill_mask", fill_mask, input_signature=[tf.TensorSpec([None], tf.string, "text")]
    )
    return {"tokens": np.zeros([1, length], np.int32)}


@signature_builder("seq2seq")
def seq2seq(archive, model, info):
    """serving_default: encoder_tokens, decoder_tokens -> logits; translate: text -> text."""
    source_length, target_length = int(info["source_length"]), int(info["target_length"])
    source_vocab, target_vocab = info["source_vocab"], info["target_vocab"]
    lower_case = info.get("lower_case", True)
    source_tokenizer = WordpieceTokenizer(source_vocab, lower_case)
    target_tokenizer = WordpieceTokenizer(target_vocab, lower_case)
    archive.track(source_tokenizer)
    archive.track(target_tokenizer)

    def serve(encoder_tokens, decoder_tokens):
        logits = model([encoder_tokens, decoder_tokens], training=False)
        return {"logits": tf.cast(logits, tf.float32)}

    def translate(text):
        source = pack(
            source_tokenizer.tokenize(text),
            source_length,
            source_vocab.index(START),
            source_vocab.index(END),
        )
        out = greedy_decode(
            model, source, target_length, target_vocab.index(START), target_vocab.index(END)
        )
        return {"translation": target_tokenizer.detokenize(out)}

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[
            _token_spec(source_length, "encoder_tokens"),
            _token_spec(target_length, "decoder_tokens"),
        ],
    )
    archive.add_endpoint(
        "translate", translate, input_signature=[tf.TensorSpec([None], tf.string, "text")]
    )
    return {
        "encoder_tokens": np.zeros([1, source_length], np.int32),
        "decoder_tokens": np.zeros([1, target_length], np.int32),
    }

"""Behaviour of the text/sequence models: shapes, causality, padding masks, unrolled LSTMs,
weight transfer by layer name, stepwise generation, overfitting one batch, .keras round trips."""

import keras
import numpy as np
import pytest

import zoo
from zoo.sequence import layers as sequence_layers
from zoo.sequence.char_rnn import char_rnn_step
from zoo.sequence.layers import transfer_weights

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seeded():
    """The same tokens and initial weights whichever tests run, in whatever order."""
    global RNG
    RNG = np.random.default_rng(0)
    keras.utils.set_random_seed(0)


TASKS = {
    "lstm": "text_classification",
    "char_rnn": "language_model",
    "gpt": "language_model",
    "transformer": "seq2seq",
    "bert_mlm": "masked_language_model",
    "bert_classifier": "text_classification",
}


def tokens(batch, length, vocab=64, low=1):
    return RNG.integers(low, vocab, size=(batch, length)).astype("int32")


def predict(model, x):
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("lstm", (3, 2)),
        ("char_rnn", (3, 16, 32)),
        ("gpt", (3, 16, 64)),
        ("transformer", (3, 10, 64)),
        ("bert_mlm", (3, 16, 64)),
        ("bert_classifier", (3, 2)),
    ],
)
def test_tiny_output_shape_dtype_and_task(name, expected):
    model = zoo.build(name, tiny=True)
    assert zoo.get_spec(name).task == TASKS[name]
    assert [w.path for w in zoo.build(name, tiny=True).weights] == [w.path for w in model.weights]
    x = [tokens(3, inp.shape[1], vocab=2, low=0) for inp in model.inputs]
    out = predict(model, x if len(x) > 1 else x[0])
    assert out.shape == expected and out.dtype == np.float32
    assert np.isfinite(out).all()
    if name in ("lstm", "bert_classifier"):
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


def test_gpt_is_causal_and_takes_contexts_shorter_than_block_size():
    model = zoo.build("gpt", tiny=True, seq_len=None)  # block_size 16
    x = tokens(2, 9)
    base = predict(model, x)
    assert base.shape == (2, 9, 64)
    for t in (0, 4, 7):
        changed = x.copy()
        changed[:, t + 1] = (changed[:, t + 1] + 1) % 64
        out = predict(model, changed)
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6)
        assert np.abs(out[:, t + 1] - base[:, t + 1]).max() > 1e-4
    # A prefix gives the same logits as the longer sequence it starts.
    np.testing.assert_allclose(predict(model, x[:, :4]), base[:, :4], atol=1e-5)


def test_gpt_rejects_sequences_longer_than_block_size():
    with pytest.raises(ValueError, match="block_size"):
        zoo.build("gpt", tiny=True, seq_len=17)


@pytest.fixture(scope="module")
def seq2seq():
    """A variable-length tiny transformer with learned positions and pre-norm blocks."""
    return zoo.build(
        "transformer", tiny=True, source_length=None, target_length=None, positions="learned",
        norm="pre", share_embeddings=True,
    )  # fmt: skip


def test_transformer_decoder_is_causal(seq2seq):
    source, target = tokens(2, 7), tokens(2, 8)
    base = predict(seq2seq, [source, target])
    for t in (0, 3, 6):
        changed = target.copy()
        changed[:, t + 1] = (changed[:, t + 1] + 1) % 64
        out = predict(seq2seq, [source, changed])
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6)
        assert np.abs(out[:, t + 1] - base[:, t + 1]).max() > 1e-4


@pytest.mark.parametrize("positions, norm", [("sinusoidal", "post"), ("learned", "pre")])
def test_transformer_ignores_source_padding(positions, norm):
    model = zoo.build(
        "transformer", tiny=True, source_length=None, target_length=None, positions=positions,
        norm=norm,
    )  # fmt: skip
    source, target = tokens(2, 6), tokens(2, 5)
    source[1, 4:] = 0  # the second source is already padded
    base = predict(model, [source, target])
    padded = np.concatenate([source, np.zeros((2, 5), "int32")], axis=1)
    np.testing.assert_allclose(predict(model, [padded, target]), base, atol=1e-5)
    # The decoder does read the source: changing a real source token moves every output.
    changed = source.copy()
    changed[:, 0] = (changed[:, 0] + 1) % 64
    assert np.abs(predict(model, [changed, target]) - base).max(axis=(1, 2)).min() > 1e-4


def test_bert_ignores_padding():
    model = zoo.build("bert_classifier", tiny=True, seq_len=None)
    x, segments = tokens(2, 8), np.zeros((2, 8), "int32")
    base = predict(model, [x, segments])
    pad = np.zeros((2, 4), "int32")
    padded = [np.concatenate([x, pad], 1), np.concatenate([segments, pad], 1)]
    np.testing.assert_allclose(predict(model, padded), base, atol=1e-5)


def test_transformer_shared_embeddings_need_one_vocabulary():
    with pytest.raises(ValueError, match="share_embeddings"):
        zoo.build("transformer", tiny=True, target_vocab_size=50, share_embeddings=True)


def test_lstm_unrolled_matches_the_loop_with_the_same_weights():
    kwargs = dict(tiny=True, num_layers=2, bidirectional=True, seq_len=12)
    looped = zoo.build("lstm", **kwargs)
    unrolled = zoo.build("lstm", unroll=True, **kwargs)
    unrolled.set_weights(looped.get_weights())
    x = tokens(4, 12)
    x[1, 7:] = 0  # padded tails are masked out in both
    x[2, 3:] = 0
    np.testing.assert_allclose(predict(unrolled, x), predict(looped, x), atol=1e-5)
    # The mask matters: padding reads differently from a real token in that slot.
    assert not np.allclose(predict(looped, np.where(x == 0, 1, x)), predict(looped, x), atol=1e-5)


def test_char_rnn_unrolled_matches_the_loop():
    looped = zoo.build("char_rnn", tiny=True)
    unrolled = zoo.build("char_rnn", tiny=True, unroll=True)
    unrolled.set_weights(looped.get_weights())
    x = tokens(2, 16, vocab=32, low=0)
    np.testing.assert_allclose(predict(unrolled, x), predict(looped, x), atol=1e-5)


def test_bert_mlm_weights_load_into_the_classifier_by_name():
    mlm = zoo.build("bert_mlm", tiny=True)
    classifier = zoo.build("bert_classifier", tiny=True)
    x = [tokens(2, 16), RNG.integers(0, 2, (2, 16)).astype("int32")]

    def encoder_output(model):
        return predict(keras.Model(model.inputs, model.get_layer("block1_ffn_norm").output), x)

    assert not np.allclose(encoder_output(mlm), encoder_output(classifier))
    copied = transfer_weights(mlm, classifier)
    np.testing.assert_allclose(encoder_output(classifier), encoder_output(mlm), atol=1e-6)
    assert {"token_embedding", "position_embedding", "segment_embedding"} <= set(copied)
    assert {"block1_attention", "block1_ffn_dense1"} <= set(copied)
    assert not {"mlm_dense", "logits", "pooler", "predictions"} & set(copied)


def test_char_rnn_step_model_generates_the_same_logits_one_step_at_a_time():
    model = zoo.build("char_rnn", tiny=True, num_layers=2)
    step = char_rnn_step(vocab_size=32, embed_dim=16, units=32, num_layers=2, weights_from=model)
    x = tokens(2, 16, vocab=32)
    full = predict(model, x)
    state = {k: np.zeros((2, 32), "float32") for k in ("h1", "c1", "h2", "c2")}
    out = step({"tokens": x[:, :10], **state})  # prime on a prefix, then one token at a time
    logits = [np.asarray(out["logits"])]
    for t in range(10, 16):
        state = {k: np.asarray(v) for k, v in out.items() if k != "logits"}
        out = step({"tokens": x[:, t : t + 1], **state})
        logits.append(np.asarray(out["logits"]))
    np.testing.assert_allclose(np.concatenate(logits, axis=1), full, atol=1e-5)


@pytest.mark.parametrize("name", ["gpt", "char_rnn"])
def test_tiny_language_model_overfits_one_batch(name):
    keras.utils.set_random_seed(1)
    model = zoo.build(name, tiny=True)
    vocab = model.output.shape[-1]
    length = model.input.shape[1]
    text = np.random.default_rng(0).integers(0, vocab, size=(4, length + 1)).astype("int32")
    x, y = text[:, :-1], text[:, 1:]
    model.compile(
        optimizer=keras.optimizers.Adam(3e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    first = float(model.train_on_batch(x, y))
    for _ in range(29):
        last = float(model.train_on_batch(x, y))
    assert first > 0.8 * np.log(vocab)  # starts near chance ...
    assert last < 0.3 * first, (first, last)  # ... and memorises the batch


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("gpt", {}),
        ("transformer", {"share_embeddings": True}),
        ("bert_mlm", {}),
        ("bert_classifier", {}),
    ],
)
def test_keras_file_round_trip(tmp_path, name, overrides):
    model = zoo.build(name, tiny=True, **overrides)
    x = [tokens(2, inp.shape[1], vocab=64 if i == 0 else 2) for i, inp in enumerate(model.inputs)]
    x = x if len(x) > 1 else x[0]
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(predict(loaded, x), predict(model, x), atol=1e-6)


@pytest.mark.parametrize("name", ["gpt", "transformer", "bert_mlm"])
def test_mixed_precision_outputs_float32(name):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = zoo.build(name, tiny=True)
    finally:
        keras.config.set_dtype_policy("float32")
    x = [tokens(2, inp.shape[1], vocab=64 if i == 0 else 2) for i, inp in enumerate(model.inputs)]
    out = model(x if len(x) > 1 else x[0])
    attention = "encoder_block1_self_attention" if name == "transformer" else "block1_attention"
    assert model.get_layer(attention).compute_dtype == "float16"
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert np.isfinite(np.asarray(out)).all()


def test_custom_layers_own_their_registered_names():
    """`zoo>Name` is one namespace: a same-named class elsewhere would load in place of ours."""
    for cls in (
        sequence_layers.PaddingMask,
        sequence_layers.PositionalEncoding,
        sequence_layers.ReversibleEmbedding,
        sequence_layers.BiasAdd,
        sequence_layers.TokenSelect,
        sequence_layers.TimeReverse,
    ):
        assert keras.saving.get_registered_object(f"zoo>{cls.__name__}") is cls

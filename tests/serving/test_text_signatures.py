"""Text exports: tokenizers and samplers inside the graph, and the text recipes end to end on tfds
mock data (lstm-imdb, transformer-pt-en, bert-mlm -> bert-imdb): string signatures callable from
`tf.saved_model.load` and agreeing with the trained model, TensorBoard text, TFLite reports."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import tensorflow_text  # noqa: F401  (registers the wordpiece ops the exports use)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import zoo
from tests.conftest import train_and_export
from textkit import CharTokenizer, Generator, WordpieceTokenizer, greedy_decode, pack
from training import data, recipes
from zoo.sequence import call_on_tokens

VOCAB = ["[PAD]", "[UNK]", "[START]", "[END]", "the", "cat", "##s", "sat", ".", "a", "dog"]


def strings(tensor):
    return [s.decode() for s in np.asarray(tensor).reshape(-1)]


# ---- tokenizers and samplers ------------------------------------------------------------------


def test_char_tokenizer_round_trip_drops_unknown_characters():
    tok = CharTokenizer(["\n", " ", "a", "b", "é"])
    ids = tok.encode(tf.constant("ab é\nzab"))
    assert ids.numpy().tolist() == [2, 3, 1, 4, 0, 2, 3]  # "z" is not in the vocabulary
    assert strings(tok.decode(ids)) == ["ab é\nab"]
    assert strings(tok.decode(tf.constant([[2, 2], [3, 4]]))) == ["aa", "bé"]


def test_wordpiece_tokenizer_tokenizes_detokenizes_and_packs():
    tok = WordpieceTokenizer(VOCAB)
    ids = tok.tokenize(tf.constant(["The cats sat.", "a zebra"]))
    assert ids.to_list() == [[4, 5, 6, 7, 8], [9, 1]]  # lower-cased; zebra is [UNK]
    assert strings(tok.detokenize(ids)) == ["the cats sat .", "a"]
    assert strings(tok.detokenize(ids, keep=[1])) == ["the cats sat .", "a [UNK]"]
    assert strings(tok.words(tf.constant(["The Cats, sat!"]))) == ["the cats , sat !"]
    packed = pack(ids, 5, start_id=2, end_id=3).numpy()
    np.testing.assert_array_equal(packed, [[2, 4, 5, 6, 3], [2, 9, 1, 3, 0]])  # cut, padded
    np.testing.assert_array_equal(pack(ids, 3).numpy(), [[4, 5, 6], [9, 1, 0]])
    with pytest.raises(ValueError, match="PAD"):
        WordpieceTokenizer(["the", "[PAD]", "[UNK]"])


def python_greedy(model, ids, steps, context):
    """Greedy continuation by re-running the Keras model on the right-padded last `context` ids."""
    ids = list(ids)
    for _ in range(steps):
        window = ids[-context:]
        x = np.zeros((1, context), np.int32)
        x[0, : len(window)] = window
        ids.append(int(np.argmax(model(x, training=False)[0, len(window) - 1])))
    return ids


@pytest.mark.parametrize("name", ["char_rnn", "gpt"])
def test_generator_greedy_matches_the_model_and_sampling_follows_the_seed(name):
    keras.utils.set_random_seed(1)
    chars = [chr(c) for c in range(ord("a"), ord("a") + 32)]
    model = zoo.build(name, tiny=True, vocab_size=32, seq_len=16)
    generator = Generator(model, chars, context=16)
    assert (generator.step is not None) == (name == "char_rnn")  # LSTMs run with carried state
    generate = tf.function(generator.generate)
    prompt = "abcdefghijklmnopqrst"  # longer than the context: the window slides
    out = generate(
        tf.constant([prompt, "cab"]), tf.constant(12), tf.constant(0.0), tf.constant(0, tf.int64)
    )
    for text, start in zip(strings(out["text"]), [prompt, "cab"]):
        ids = [chars.index(c) for c in start]
        expected = "".join(chars[i] for i in python_greedy(model, ids, 12, 16))
        if name == "char_rnn" and len(start) > 16:
            continue  # the recurrent sampler reads the whole prompt, not the last 16
        assert text == expected
    assert [len(c) for c in strings(out["completion"])] == [12, 12]

    def sample(seed, prompt="ab"):
        args = (tf.constant(prompt), tf.constant(30), tf.constant(1.5), tf.constant(seed, tf.int64))
        return strings(generate(*args)["text"])[0]

    assert sample(7) == sample(7) and sample(7) != sample(8)
    assert sample(7).startswith("ab") and len(sample(7)) == 32
    assert len(strings(generate(tf.constant(""), 5, 1.0, tf.constant(1, tf.int64))["text"])[0]) == 5


def test_recurrent_generation_reads_the_whole_prompt_with_carried_state():
    keras.utils.set_random_seed(2)
    chars = [chr(c) for c in range(ord("a"), ord("a") + 32)]
    model = zoo.build("char_rnn", tiny=True, vocab_size=32, seq_len=24)
    out = Generator(model, chars, context=24).generate(
        tf.constant(["abcdefghijklmnopqrst"]), 4, 0.0, tf.constant(0, tf.int64)
    )
    ids = [chars.index(c) for c in "abcdefghijklmnopqrst"]
    assert strings(out["text"])[0] == "".join(chars[i] for i in python_greedy(model, ids, 4, 24))


# ---- the text recipes on mock data ------------------------------------------------------------


def train_mock(root, name, sets, examples=32):
    recipe = recipes.resolve(name, ["run.tiny=true", "train.log_every=2", *sets])
    patch = pytest.MonkeyPatch()
    patch.setattr(data, "network_available", lambda: True)  # mock_data stands in for downloads
    try:
        with tfds.testing.mock_data(num_examples=examples):
            return train_and_export(recipe, root)
    finally:
        patch.undo()


def text_tags(run_dir):
    acc = EventAccumulator(str(run_dir / "validation"), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def report_rows(result):
    report = json.loads((result.export_dir.parent / "tflite" / "report.json").read_text())
    return {row["variant"]: row for row in report["variants"]}


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    sets = ["task.seq_len=12", "task.vocab_size=200", "train.epochs=2", "train.batch_size=16"]
    return train_mock(tmp_path_factory.mktemp("lstm"), "lstm-imdb", sets, examples=64)


def test_lstm_classifier_serves_raw_text(lstm_run):
    loaded = tf.saved_model.load(str(lstm_run.export_dir))
    assert {"serving_default", "predict_text"} <= set(loaded.signatures)
    info = json.loads((lstm_run.export_dir / "assets.extra" / "export_info.json").read_text())
    assert info["task"] == "text_classification" and info["vocab"][:2] == ["[PAD]", "[UNK]"]
    texts = ["abc def ghij", "jihg fedcba a b c d e f g h i j", ""]
    out = loaded.signatures["predict_text"](text=tf.constant(texts))
    tokenizer = WordpieceTokenizer(info["vocab"])
    cls, sep = info["vocab"].index("[CLS]"), info["vocab"].index("[SEP]")
    tokens = pack(tokenizer.tokenize(tf.constant(texts)), 12, cls, sep)
    expected = lstm_run.model(tokens, training=False).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    assert strings(out["labels"]) == [info["class_names"][c] for c in out["classes"].numpy()]
    dense = loaded.signatures["serving_default"](tokens=tokens)["probabilities"].numpy()
    np.testing.assert_allclose(dense, expected, atol=1e-5)  # the unrolled twin, same function

    assert "predictions" in text_tags(lstm_run.run_dir).Tags()["tensors"]
    rows = report_rows(lstm_run)
    assert set(rows) == {"float32", "float16", "dynamic", "int8"}
    for row in rows.values():  # the unrolled LSTM converts to builtin ops in every variant
        assert "error" not in row, row
    assert rows["float32"]["agreement"] == 1.0 and rows["float32"]["max_abs_diff"] < 1e-4
    # the text-in signature is listed as SavedModel-only, with the converter's reason
    report = json.loads((lstm_run.export_dir.parent / "tflite" / "report.json").read_text())
    (other,) = report["other_signatures"]
    assert other["signature"] == "predict_text" and not other["converts"]
    assert "WordpieceTokenizeWithOffsets" in other["reason"]
    assert (
        "| predict_text | do not convert: needs TensorFlow ops"
        in (lstm_run.export_dir.parent / "tflite" / "report.md").read_text()
    )


@pytest.fixture(scope="module")
def translator_run(tmp_path_factory):
    sets = [
        "model.overrides={}",
        "task.source_length=12",
        "task.target_length=10",
        "task.vocab_size=200",
        "task.bleu_examples=8",
        "train.epochs=2",
        "train.batch_size=8",
        'export.tflite.variants=["float32","int8"]',
    ]
    return train_mock(tmp_path_factory.mktemp("translator"), "transformer-pt-en", sets)


def test_translator_logs_bleu_and_translations(translator_run):
    assert 0.0 <= translator_run.metrics["bleu"] <= 100.0
    assert {"loss", "accuracy", "perplexity"} <= set(translator_run.metrics)
    tags = text_tags(translator_run.run_dir)
    assert {"translations", "epoch_bleu", "epoch_perplexity"} <= set(tags.Tags()["tensors"])
    table = tf.make_ndarray(tags.Tensors("translations")[-1].tensor_proto).item().decode()
    assert table.startswith("| source | translation | reference |")


def test_translate_signature_is_the_greedy_decoder(translator_run):
    loaded = tf.saved_model.load(str(translator_run.export_dir))
    assert {"serving_default", "translate"} <= set(loaded.signatures)
    info = json.loads((translator_run.export_dir / "assets.extra" / "export_info.json").read_text())
    texts = ["chg dif hhia", "abc", "j i h g f e d c b a"]
    out = loaded.signatures["translate"](text=tf.constant(texts))["translation"]
    assert out.dtype == tf.string and out.shape == (3,)
    # the same decoding, step by step outside the graph, on the trained Keras model
    source_tok = WordpieceTokenizer(info["source_vocab"])
    target_tok = WordpieceTokenizer(info["target_vocab"])
    sv, tv = info["source_vocab"], info["target_vocab"]
    source = pack(
        source_tok.tokenize(tf.constant(texts)), 12, sv.index("[START]"), sv.index("[END]")
    )
    ids = greedy_decode(translator_run.model, source, 10, tv.index("[START]"), tv.index("[END]"))
    assert strings(out) == strings(target_tok.detokenize(ids))

    rows = report_rows(translator_run)  # two token inputs, fed by name
    assert set(rows) == {"float32", "int8"}
    for row in rows.values():
        assert "size_bytes" in row or row["error"], row
    assert rows["float32"]["max_abs_diff"] < 1e-4


@pytest.fixture(scope="module")
def bert_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    common = ["task.seq_len=16", "train.batch_size=8", 'export.tflite.variants=["float32"]']
    mlm = train_mock(root, "bert-mlm", [*common, "task.vocab_size=200", "train.epochs=2"])
    # lr 0: the classifier keeps exactly the weights it started from
    sets = [*common, f"task.pretrained={mlm.run_dir}", "optimizer.lr=0.0", "train.epochs=1"]
    classifier = train_mock(root, "bert-imdb", sets)
    return mlm, classifier


def test_bert_classifier_starts_from_the_pretrained_encoder(bert_runs):
    mlm, classifier = bert_runs
    for name in ("token_embedding", "block1_attention", "block1_ffn_dense1", "embedding_norm"):
        for a, b in zip(
            mlm.model.get_layer(name).weights, classifier.model.get_layer(name).weights
        ):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    info = json.loads((classifier.export_dir / "assets.extra" / "export_info.json").read_text())
    mlm_info = json.loads((mlm.export_dir / "assets.extra" / "export_info.json").read_text())
    assert info["vocab"] == mlm_info["vocab"]  # the pretrained run's vocabulary
    out = tf.saved_model.load(str(classifier.export_dir)).signatures["predict_text"](
        text=tf.constant(["abc def", "ghij"])
    )
    tokens = pack(
        WordpieceTokenizer(info["vocab"]).tokenize(tf.constant(["abc def", "ghij"])),
        16,
        info["vocab"].index("[CLS]"),
        info["vocab"].index("[SEP]"),
    )
    expected = call_on_tokens(classifier.model, tokens).numpy()  # segment ids: zeros
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)


def test_fill_mask_fills_each_mask_with_the_models_choice(bert_runs):
    mlm, _ = bert_runs
    assert {"loss", "accuracy", "perplexity"} <= set(mlm.metrics)
    assert "fill_mask" in text_tags(mlm.run_dir).Tags()["tensors"]
    loaded = tf.saved_model.load(str(mlm.export_dir))
    info = json.loads((mlm.export_dir / "assets.extra" / "export_info.json").read_text())
    vocab, tokenizer = info["vocab"], WordpieceTokenizer(info["vocab"])
    texts = ["abc [MASK] def", "[MASK] ghij [MASK]"]
    filled = strings(loaded.signatures["fill_mask"](text=tf.constant(texts))["text"])
    # by hand: the masks where the text has them, the model's argmax in their place
    mask, cls, sep = (vocab.index(t) for t in ("[MASK]", "[CLS]", "[SEP]"))
    pieces = [["abc ", " def"], ["", " ghij ", ""]]
    for text, parts in zip(filled, pieces):
        ids = []
        for i, part in enumerate(parts):
            ids += tokenizer.tokenize(tf.constant([part])).to_list()[0]
            ids += [mask] if i < len(parts) - 1 else []
        tokens = pack(tf.ragged.constant([ids]), 16, cls, sep)
        predicted = np.argmax(call_on_tokens(mlm.model, tokens).numpy(), -1)
        tokens = np.where(tokens.numpy() == mask, predicted, tokens.numpy())
        assert text == strings(tokenizer.detokenize(tf.constant(tokens)))[0]
        assert "[MASK]" not in text
    assert "error" not in report_rows(mlm)["float32"]

"""Text tasks: BLEU against hand-computed values, beam search against greedy and exhaustive search,
MLM masking rates, the nanoGPT optimizer recipe, and char_rnn and a small GPT trained on the real
tiny_shakespeare text (prepared offline) to a validation loss well below the text's unigram
entropy, then served through their `generate` signature."""

import collections
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import zoo
from tests.conftest import train_and_export
from textkit import beam_search, greedy_decode
from training import data, optimizers, recipes
from training.tasks.text import LanguageModel, MaskedLanguageModel
from training.text_utils import corpus_bleu

# ---- BLEU -------------------------------------------------------------------------------------


def test_bleu_is_sacrebleus_corpus_bleu_as_papers_report_it():
    # sacrebleu's own documented example, two reference streams: BLEU 48.53
    hypotheses = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    first = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."]
    second = ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]
    assert corpus_bleu(hypotheses, list(zip(first, second))) == pytest.approx(48.53, abs=0.005)
    # and the definition by hand: every n-gram matches, 6 words against 7: brevity penalty
    short = corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat today"])
    assert short == pytest.approx(100 * math.exp(1 - 7 / 6))
    # counts are summed over the corpus before the precisions are taken
    bleu = corpus_bleu(["a b c d", "a b x d"], ["a b c d", "a b c d"])
    assert bleu == pytest.approx(100 * (7 / 8 * 4 / 6 * 2 / 4 * 1 / 2) ** 0.25)
    assert corpus_bleu([""], ["a b"]) == 0.0
    with pytest.raises(ValueError):
        corpus_bleu(["a"], [])


# ---- decoding ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def translator():
    keras.utils.set_random_seed(3)
    return zoo.build("transformer", tiny=True, target_vocab_size=16, target_length=None)


def test_beam_search_of_width_one_is_greedy(translator):
    source = np.random.default_rng(0).integers(1, 64, size=(6, 12)).astype("int32")
    greedy = greedy_decode(translator, tf.constant(source), 10, 2, 3).numpy()
    beam = beam_search(translator, source, 10, 2, 3, beam_size=1)
    np.testing.assert_array_equal(beam, greedy)
    assert (greedy != 0).sum() > 6  # the untrained model does say something
    for row in greedy:  # nothing after the first [END]
        ends = np.flatnonzero(row == 3)
        if len(ends):
            assert not row[ends[0] + 1 :].any()


def test_beam_search_as_wide_as_the_vocabulary_finds_the_best_pair(translator):
    """Two steps, 16 beams over a 16-token vocabulary: exhaustive, so the most likely pair."""
    source = np.random.default_rng(1).integers(1, 64, size=(3, 12)).astype("int32")
    found = beam_search(translator, source, 10, 2, 3, beam_size=16)

    def logp(prefix):
        decoder = np.zeros((len(source), 10), "int32")
        decoder[:, 0] = 2
        decoder[:, 1 : 1 + prefix.shape[1]] = prefix
        logits = translator([source, decoder], training=False)[:, prefix.shape[1]]
        return tf.nn.log_softmax(logits).numpy()

    first = logp(np.zeros((3, 0), "int32"))  # [3, 16]
    best = []
    for i in range(len(source)):
        scores = {}
        for a in range(16):
            prefix = np.full((3, 1), a, "int32")
            second = logp(prefix)[i] if a != 3 else np.where(np.arange(16) == 0, 0.0, -1e9)
            for b in range(16):
                scores[(a, b)] = first[i, a] + second[b]
        best.append(max(scores, key=scores.get))
    # a two-token search is exact; the beam's first two tokens are that best pair
    two = beam_search(translator, source, 2, 2, 3, beam_size=16)
    assert [tuple(row) for row in two] == best
    assert found.shape == (3, 10)


# ---- masking and optimizers -------------------------------------------------------------------


def test_masked_lm_masks_fifteen_percent_of_real_tokens_eighty_ten_ten(monkeypatch):
    monkeypatch.setattr(data, "network_available", lambda: True)  # mock_data stands in
    with tfds.testing.mock_data(num_examples=16):
        task = MaskedLanguageModel(
            {"seq_len": 128, "vocab_size": 200, "vocab_split": "train"},
            data.open_source("imdb_reviews"),
        )
    rng = np.random.default_rng(0)
    tokens = rng.integers(5, len(task.vocab), size=(256, 128)).astype("int32")
    tokens[:, 0], tokens[:, 100] = task.cls_id, task.sep_id
    tokens[:, 101:] = 0
    out = task.mask(tf.constant(tokens), tf.constant([1, 2]))
    masked, labels, weights = (np.asarray(t) for t in out)
    chosen = weights > 0
    np.testing.assert_array_equal(labels, tokens)
    assert not chosen[:, [0, 100]].any() and not chosen[:, 101:].any()
    assert chosen[:, 1:100].mean() == pytest.approx(0.15, abs=0.01)
    share = collections.Counter(
        "mask" if m == task.mask_id else "same" if m == t else "random"
        for m, t in zip(masked[chosen], tokens[chosen])
    )
    n = chosen.sum()
    assert share["mask"] / n == pytest.approx(0.8, abs=0.03)
    assert share["random"] / n == pytest.approx(0.1, abs=0.03)  # a random id may equal the token
    np.testing.assert_array_equal(masked[~chosen], tokens[~chosen])
    again = task.mask(tokens, tf.constant([1, 2]))[0].numpy()
    np.testing.assert_array_equal(again, masked)
    assert (task.mask(tokens, tf.constant([1, 3]))[0].numpy() != masked).any()


def test_nanogpt_optimizer_recipe():
    recipe = recipes.resolve("gpt-shakespeare-char")
    assert recipe["train"]["max_steps"] == 5000 and recipe["train"]["batch_size"] == 64
    opt = optimizers.build(recipe["optimizer"], 5000)
    assert isinstance(opt, keras.optimizers.AdamW) and opt.beta_2 == 0.99
    assert opt.weight_decay == 0.1 and opt.global_clipnorm == 1.0
    rate = opt._learning_rate
    assert float(rate(50)) == pytest.approx(5e-4)  # warm-up
    assert float(rate(100)) == pytest.approx(1e-3)
    assert float(rate(5000)) == pytest.approx(1e-4)  # nanoGPT's min_lr, not zero
    dense, norm = keras.layers.Dense(2), keras.layers.LayerNormalization()
    dense.build((None, 2)), norm.build((None, 2))
    decayed = {v.name: opt._use_weight_decay(v) for v in dense.weights + norm.weights}
    assert decayed == {"kernel": True, "bias": False, "gamma": False, "beta": False}


# ---- real text: tiny_shakespeare --------------------------------------------------------------


@pytest.fixture(scope="module")
def shakespeare(shared_data, tmp_path_factory):
    """tiny_shakespeare prepared from the original file, into a temporary TFDS_DATA_DIR."""
    patch = pytest.MonkeyPatch()
    patch.setenv("TFDS_DATA_DIR", str(tmp_path_factory.mktemp("tfds")))
    patch.setenv("TFDS_MANUAL_DIR", str(shared_data / "tfds-manual"))
    patch.setattr(data, "network_available", lambda: False)  # never a download
    try:
        yield data.open_source("tiny_shakespeare")
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def unigram_entropy(shakespeare):
    """Entropy (nats) of the training text's character frequencies: the loss of a model that
    knows nothing but how often each character occurs."""
    text = next(shakespeare.load("train").as_numpy_iterator())["text"].decode()
    counts = collections.Counter(text)
    n = len(text)
    return -sum(c / n * math.log(c / n) for c in counts.values())


def test_shakespeare_windows_shift_by_one(shakespeare, unigram_entropy):
    assert unigram_entropy == pytest.approx(3.309, abs=0.001)
    task = LanguageModel({"seq_len": 50, "stride": 25}, shakespeare)
    assert len(task.chars) == 65 and task.chars[:2] == ["\n", " "]
    text = next(shakespeare.load("validation").as_numpy_iterator())["text"].decode()
    windows = list(task.inputs(shakespeare.load("validation")).as_numpy_iterator())
    assert len(windows) == (len(text) - 51) // 25 + 1
    (x0, y0), (x1, _) = windows[0], windows[1]
    np.testing.assert_array_equal(x0[1:], y0[:-1])
    np.testing.assert_array_equal(x1[:25], x0[25:])
    assert "".join(task.chars[i] for i in x0) == text[:50]


def train_shakespeare(root, name, sets):
    recipe = recipes.resolve(
        name, [*sets, "train.log_every=100", 'export.tflite.variants=["float32"]']
    )
    return train_and_export(recipe, root)


def check_served_generation(result):
    info = json.loads((result.export_dir / "assets.extra" / "export_info.json").read_text())
    chars, seq_len = info["chars"], info["seq_len"]
    generate = tf.saved_model.load(str(result.export_dir)).signatures["generate"]

    def run(prompt, n, temperature, seed):
        out = generate(
            prompt=tf.constant(prompt),
            max_new_tokens=tf.constant(n),
            temperature=tf.constant(temperature),
            seed=tf.constant(seed, tf.int64),
        )
        return [s.decode() for s in out["text"].numpy().reshape(-1)]

    # greedy: the SavedModel's loop in the graph continues as the Keras model does
    ids = [chars.index(c) for c in "ROMEO:\n"]
    for _ in range(20):
        x = np.zeros((1, seq_len), "int32")
        window = ids[-seq_len:]
        x[0, : len(window)] = window
        ids.append(int(np.argmax(result.model(x, training=False)[0, len(window) - 1])))
    assert run(["ROMEO:\n"], 20, 0.0, 0) == ["".join(chars[i] for i in ids)]
    sampled = run(["ROMEO:\n", "To be"], 200, 0.8, 5)
    assert sampled == run(["ROMEO:\n", "To be"], 200, 0.8, 5)
    assert sampled[1].startswith("To be") and len(sampled[1]) == 205
    assert set("".join(sampled)) <= set(chars)
    assert sampled[0].count(" ") > 10  # words, not noise

    events = EventAccumulator(str(result.run_dir / "validation"), size_guidance={"tensors": 0})
    events.Reload()
    assert {"samples", "epoch_loss", "epoch_perplexity"} <= set(events.Tags()["tensors"])
    report = json.loads((result.export_dir.parent / "tflite" / "report.json").read_text())
    float32 = report["variants"][0]
    assert "error" not in float32 and float32["max_abs_diff"] < 1e-3, float32
    (generate_row,) = report["other_signatures"]
    assert generate_row["signature"] == "generate" and not generate_row["converts"]
    assert generate_row["reason"]


def test_char_rnn_learns_shakespeare(shakespeare, unigram_entropy, tmp_path):
    result = train_shakespeare(
        tmp_path,
        "char-rnn",
        [
            'model.overrides={"units": 128, "num_layers": 1, "embed_dim": 32}',
            "train.max_steps=300",
            "train.epochs=1",
            "train.batch_size=32",
            "optimizer.lr=0.005",
            "optimizer.schedule=constant",
            "task.sample_length=100",
        ],
    )
    assert result.steps == 300
    loss = result.metrics["loss"]
    assert loss < unigram_entropy - 0.9, result.metrics  # about 2.1 against 3.31
    assert result.metrics["perplexity"] == pytest.approx(math.exp(loss))
    check_served_generation(result)


def test_small_gpt_learns_shakespeare(shakespeare, unigram_entropy, tmp_path):
    result = train_shakespeare(
        tmp_path,
        "gpt-shakespeare-char-cpu",
        [
            'model.overrides={"block_size": 32, "num_layers": 2, "num_heads": 4, "d_model": 64,'
            ' "dropout": 0.0}',
            "task.seq_len=32",
            "task.stride=32",
            "task.sample_length=100",
            "train.max_steps=600",
            "train.epochs=1",
            "train.batch_size=32",
            "optimizer.lr=0.004",
            "optimizer.warmup_steps=30",
        ],
    )
    assert result.steps == 600
    assert result.metrics["loss"] < unigram_entropy - 0.9, result.metrics  # about 2.1
    check_served_generation(result)

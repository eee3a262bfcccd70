"""Text tasks: character language modelling, text classification, masked-LM pretraining and
sequence-to-sequence translation.

Each builds its vocabulary from the training split when it starts (characters, or wordpieces
learnt with tensorflow_text), tokenizes with textkit (as the exported SavedModel does, so the
export serves the same tokenization), hands the vocabulary to the exporter in `export_info()`,
and writes text to TensorBoard each epoch with `tf.summary.text`: generated text, predictions next
to the truth, translations next to references. Token losses are means over the real (unpadded)
tokens of the global batch; steps return per-replica sums plus `count` (examples) and `tokens`.
"""

import json
import math
import pathlib

import keras
import numpy as np
import tensorflow as tf

import textkit
from textkit import CLS, END, MASK, SEP, START, CharTokenizer, Generator, WordpieceTokenizer, pack
from training import text_utils
from training.tasks.base import Task, apply_gradients, regularization_loss
from zoo.sequence import call_on_tokens, transfer_weights

SUM = tf.distribute.ReduceOp.SUM


def _global_sum(x):
    """Sum of `x` over the replicas (inside strategy.run; the identity on one device)."""
    context = tf.distribute.get_replica_context()
    return context.all_reduce(SUM, x) if context is not None else x


def token_loss(labels, logits, weights):
    """Cross-entropy per token [B, T] (float32) and the weighted sum of it."""
    ce = keras.losses.sparse_categorical_crossentropy(
        labels, tf.cast(logits, tf.float32), from_logits=True
    )
    return ce, tf.reduce_sum(ce * weights)


def token_sums(labels, logits, ce, weights):
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels), tf.float32)
    return {
        "loss": tf.reduce_sum(ce * weights),
        "accuracy": tf.reduce_sum(correct * weights),
        "tokens": tf.reduce_sum(weights),
        "count": tf.cast(tf.shape(labels)[0], tf.float32),
    }


def token_results(totals):
    tokens = max(float(totals.get("tokens", 0.0)), 1.0)
    loss = float(totals["loss"]) / tokens
    return {
        "loss": loss,
        "accuracy": float(totals["accuracy"]) / tokens,
        "perplexity": math.exp(min(loss, 50.0)),
    }


def token_step(model, optimizers, labels, weights, run_model):
    """One optimizer step on the weighted token cross-entropy, a mean over the global batch's
    weighted tokens."""
    optimizer = optimizers["model"]
    total = _global_sum(tf.reduce_sum(weights))
    with tf.GradientTape() as tape:
        logits = tf.cast(run_model(), tf.float32)
        ce, summed = token_loss(labels, logits, weights)
        loss = summed / tf.maximum(total, 1.0) + regularization_loss(model)
    apply_gradients(optimizer, tape, loss, model.trainable_variables)
    return token_sums(labels, logits, ce, weights)


class TeacherForcing:
    """The steps of a model that reads its inputs and the target shifted right (teacher forcing)
    and predicts the target's next tokens: a batch is `((inputs..., target_in), labels)`, padding
    (id 0) is not scored. Shared by translation and captioning."""

    def train_step(self, model, optimizers, batch, global_batch_size):
        inputs, labels = batch
        weights = tf.cast(labels != 0, tf.float32)
        return token_step(
            model, optimizers, labels, weights, lambda: model(list(inputs), training=True)
        )

    def eval_step(self, model, batch):
        inputs, labels = batch
        logits = tf.cast(model(list(inputs), training=False), tf.float32)
        weights = tf.cast(labels != 0, tf.float32)
        ce, _ = token_loss(labels, logits, weights)
        return token_sums(labels, logits, ce, weights)

    def results(self, totals):
        return token_results(totals)


def table(header, rows) -> str:
    """A markdown table (TensorBoard's text dashboard renders it)."""

    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def strings(tensor) -> list[str]:
    return [s.decode("utf-8", errors="replace") for s in np.asarray(tensor).reshape(-1)]


# ---- character language model -----------------------------------------------------------------


class LanguageModel(Task):
    """Next-character prediction (char-rnn, nanoGPT's shakespeare_char).

    The text of a split (its examples joined by newlines) is cut into windows of `seq_len` + 1
    characters every `stride` characters: x is a window but its last character, y the window from
    its second, so every position is a target. Config: `text_key`, `seq_len`, `stride` (default
    seq_len), `vocab_split`, and for the samples logged each epoch `prompt` (default: the start of
    a validation window), `sample_length`, `temperature`.
    """

    name = "language_model"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.text_key = config.get("text_key", "text")
        self.seq_len = int(config.get("seq_len", 256))
        self.stride = int(config.get("stride") or self.seq_len)
        split = config.get("vocab_split", "train")
        self.chars = textkit.char_vocabulary(self._text(self.source.load(split)))
        self.tokenizer = CharTokenizer(self.chars)
        self._generator = self._generate = None

    def _text(self, ds) -> str:
        return "\n".join(
            s.decode("utf-8") for s in ds.map(lambda e: e[self.text_key]).as_numpy_iterator()
        )

    def model_overrides(self):
        return {"vocab_size": len(self.chars), "seq_len": self.seq_len}

    def inputs(self, ds):
        ids = self.tokenizer.encode(tf.constant(self._text(ds)))
        size, stride = self.seq_len + 1, self.stride
        windows = max(0, (int(tf.size(ids)) - size) // stride + 1)

        def window(i):
            chunk = ids[i * stride : i * stride + size]
            return chunk[:-1], chunk[1:]

        return tf.data.Dataset.range(windows).map(window)

    def train_step(self, model, optimizers, batch, global_batch_size):
        x, y = batch
        weights = tf.ones_like(y, tf.float32)
        return token_step(model, optimizers, y, weights, lambda: model(x, training=True))

    def eval_step(self, model, batch):
        x, y = batch
        logits = tf.cast(model(x, training=False), tf.float32)
        weights = tf.ones_like(y, tf.float32)
        ce, _ = token_loss(y, logits, weights)
        return token_sums(y, logits, ce, weights)

    def results(self, totals):
        return token_results(totals)

    def generator(self, model) -> Generator:
        """The sampler used for the epoch samples (the export builds its own)."""
        if self._generator is None or self._generator.model is not model:
            self._generator = Generator(model, self.chars, context=self.seq_len)
            self._generate = tf.function(self._generator.generate)
        self._generator.refresh()
        return self._generator

    def log_epoch(self, model, sample, totals, step):
        self.generator(model)
        prompt = self.config.get("prompt")
        if prompt is None:
            x = np.asarray(sample[0])[0]
            prompt = strings(self.tokenizer.decode(x[: min(32, len(x))]))[0]
        out = self._generate(
            tf.constant([prompt]),
            tf.constant(int(self.config.get("sample_length", 300))),
            tf.constant(float(self.config.get("temperature", 0.8))),
            tf.constant(int(step), tf.int64),
        )
        text = strings(out["text"])[0]
        tf.summary.text("samples", "```\n" + text + "\n```", step=step)

    def calibration(self, train, test):
        return {
            "representative": np.stack([x for x, _ in train.take(64).as_numpy_iterator()]),
            "x_test": np.stack([x for x, _ in test.take(32).as_numpy_iterator()]),
        }

    def export_info(self):
        return {"chars": self.chars, "seq_len": self.seq_len}


# ---- wordpiece tasks ----------------------------------------------------------------------------


class _WordpieceTask(Task):
    """Shared by the tasks that read text through a BERT-style wordpiece vocabulary: learnt from
    `vocab_split` (`vocab_size`, `lower_case`), or taken from a `pretrained` run's
    export_info.json so its weights read the same ids."""

    text_key = "text"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.text_key = config.get("text_key", self.text_key)
        self.seq_len = int(config.get("seq_len", 128))
        self.lower_case = bool(config.get("lower_case", True))
        self.pretrained = config.get("pretrained")
        if self.pretrained:
            self.vocab = self._pretrained_info()["vocab"]
        else:
            texts = text_utils.split_texts(
                source, config.get("vocab_split", "train"), self.text_key
            )
            self.vocab = textkit.wordpiece_vocabulary(
                texts, config.get("vocab_size", 8000), textkit.BERT_TOKENS, self.lower_case
            )
        self.tokenizer = WordpieceTokenizer(self.vocab, self.lower_case)
        self.cls_id, self.sep_id = self.vocab.index(CLS), self.vocab.index(SEP)

    def _pretrained_info(self) -> dict:
        run = pathlib.Path(self.pretrained)
        for needed in ("export_info.json", "model.keras"):
            if not (run / needed).is_file():
                raise ValueError(f"pretrained run {run} has no {needed}")
        return json.loads((run / "export_info.json").read_text())

    def build_optimizers(self, model, make_optimizer):
        if self.pretrained:  # the model is built: start it from the pretrained weights
            source = keras.saving.load_model(
                pathlib.Path(self.pretrained) / "model.keras", compile=False
            )
            copied = transfer_weights(source, model)
            if not copied:
                raise ValueError(f"no layer of {self.pretrained} matches the model by name")
        return super().build_optimizers(model, make_optimizer)

    def encode(self, texts):
        """Strings [N] -> int32 [N, seq_len]: [CLS] wordpieces [SEP], padded."""
        return pack(self.tokenizer.tokenize(texts), self.seq_len, self.cls_id, self.sep_id)

    def model_overrides(self):
        return {"vocab_size": len(self.vocab), "seq_len": self.seq_len}

    def export_info(self):
        return {"vocab": list(self.vocab), "seq_len": self.seq_len, "lower_case": self.lower_case}


class TextClassification(_WordpieceTask):
    """Raw text -> class (the lstm and bert_classifier on imdb_reviews): cross-entropy and
    accuracy; each epoch a table of validation texts with predicted and true labels. Config:
    `text_key`, `label_key`, `seq_len`, `vocab_size`, `lower_case`, `vocab_split`, `pretrained`
    (a bert_mlm run directory whose encoder weights and vocabulary to start from)."""

    name = "text_classification"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.label_key = config.get("label_key", "label")
        self.class_names = source.class_names
        self.num_classes = len(self.class_names)

    def inputs(self, ds):
        def encode(examples):
            return self.encode(examples[self.text_key]), examples[self.label_key]

        return ds.batch(256).map(encode).unbatch()

    def model_overrides(self):
        return {**super().model_overrides(), "num_classes": self.num_classes}

    def _sums(self, labels, probs):
        one_hot = tf.one_hot(labels, self.num_classes)
        per_example = keras.losses.categorical_crossentropy(one_hot, probs)
        predicted = tf.argmax(probs, axis=-1, output_type=labels.dtype)
        return per_example, {
            "loss": tf.reduce_sum(per_example),
            "accuracy": tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32)),
            "count": tf.cast(tf.size(labels), tf.float32),
        }

    def train_step(self, model, optimizers, batch, global_batch_size):
        tokens, labels = batch
        with tf.GradientTape() as tape:
            probs = tf.cast(call_on_tokens(model, tokens, training=True), tf.float32)
            per_example, sums = self._sums(labels, probs)
            loss = tf.reduce_sum(per_example) / global_batch_size + regularization_loss(model)
        apply_gradients(optimizers["model"], tape, loss, model.trainable_variables)
        return sums

    def eval_step(self, model, batch):
        tokens, labels = batch
        return self._sums(labels, tf.cast(call_on_tokens(model, tokens), tf.float32))[1]

    def log_epoch(self, model, sample, totals, step):
        tokens, labels = (np.asarray(a)[:8] for a in sample)
        probs = np.asarray(call_on_tokens(model, tf.constant(tokens)))
        texts = strings(self.tokenizer.detokenize(tf.constant(tokens)))
        names = self.class_names
        rows = [
            (text[:300], f"{names[p]} ({probs[i, p]:.2f})", names[t])
            for i, (text, p, t) in enumerate(zip(texts, probs.argmax(-1), labels))
        ]
        tf.summary.text("predictions", table(["text", "predicted", "true"], rows), step=step)

    def calibration(self, train, test):
        pairs = list(test.take(1000).as_numpy_iterator())
        return {
            "representative": np.stack([x for x, _ in train.take(200).as_numpy_iterator()]),
            "x_test": np.stack([x for x, _ in pairs]),
            "y_test": np.array([y for _, y in pairs]),
        }

    def export_info(self):
        return {**super().export_info(), "class_names": [str(n) for n in self.class_names]}


class MaskedLanguageModel(_WordpieceTask):
    """BERT's masked-LM pretraining: `mask_rate` (15%) of the real tokens are chosen; of those 80%
    become [MASK], 10% a random wordpiece, 10% stay; the loss is the cross-entropy at the chosen
    positions. Training masks afresh each epoch (a stateless seed per example); validation masks
    with a fixed seed, so its loss is comparable across epochs."""

    name = "masked_language_model"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.mask_rate = float(config.get("mask_rate", 0.15))
        self.mask_id = self.vocab.index(MASK)
        self.first_wordpiece = len(textkit.BERT_TOKENS)

    def inputs(self, ds):
        def encode(examples):
            return (self.encode(examples[self.text_key]),)

        return ds.batch(256).map(encode).unbatch()

    def mask(self, tokens, seed):
        """Ids [..., T] -> (masked ids, labels, weights: 1.0 at the chosen positions)."""
        seed = tf.cast(seed, tf.int64)
        shape = tf.shape(tokens)
        real = (tokens != 0) & (tokens != self.cls_id) & (tokens != self.sep_id)
        chosen = real & (tf.random.stateless_uniform(shape, seed) < self.mask_rate)
        how = tf.random.stateless_uniform(shape, seed + 1)
        random_ids = tf.random.stateless_uniform(
            shape, seed + 2, self.first_wordpiece, len(self.vocab), dtype=tf.int32
        )
        masked = tf.where(chosen & (how < 0.8), self.mask_id, tokens)
        masked = tf.where(chosen & (how >= 0.8) & (how < 0.9), random_ids, masked)
        return masked, tokens, tf.cast(chosen, tf.float32)

    @property
    def augment(self):
        return lambda tokens, seed: self.mask(tokens, seed)

    def train_step(self, model, optimizers, batch, global_batch_size):
        masked, labels, weights = batch
        return token_step(
            model, optimizers, labels, weights, lambda: call_on_tokens(model, masked, True)
        )

    def eval_step(self, model, batch):
        masked, labels, weights = self.mask(batch[0], tf.constant([1234, 0], tf.int64))
        logits = tf.cast(call_on_tokens(model, masked), tf.float32)
        ce, _ = token_loss(labels, logits, weights)
        return token_sums(labels, logits, ce, weights)

    def results(self, totals):
        return token_results(totals)

    def log_epoch(self, model, sample, totals, step):
        tokens = tf.constant(np.asarray(sample[0])[:8])
        masked, _, weights = self.mask(tokens, tf.constant([1234, 0], tf.int64))
        predicted = tf.argmax(call_on_tokens(model, masked), -1, output_type=tf.int32)
        filled = tf.where(weights > 0, predicted, masked)
        keep = [self.mask_id]
        show = [strings(self.tokenizer.detokenize(t, keep=keep)) for t in (masked, filled, tokens)]
        rows = [(m[:300], f[:300], o[:300]) for m, f, o in zip(*show)]
        tf.summary.text("fill_mask", table(["masked", "filled", "original"], rows), step=step)

    def calibration(self, train, test):
        return {
            "representative": np.stack([x for (x,) in train.take(200).as_numpy_iterator()]),
            "x_test": np.stack([x for (x,) in test.take(200).as_numpy_iterator()]),
        }


# ---- sequence to sequence ------------------------------------------------------------------------


class Seq2Seq(TeacherForcing, Task):
    """Translation with an encoder-decoder (ted_hrlr_translate/pt_to_en): teacher forcing,
    cross-entropy over the real target tokens; each epoch BLEU on `bleu_split` (its first
    `bleu_examples`, 0: all) decoded greedily or by beam search, with a table of translations next
    to references. Source and target wordpiece vocabularies are learnt from `vocab_split`.

    Config: `source_key`, `target_key`, `vocab_size`, `source_length`, `target_length`,
    `lower_case`, `vocab_split`, `bleu_split`, `bleu_examples`, `decode` ("greedy" | "beam"),
    `beam_size`, `length_penalty` (GNMT alpha), `samples` (rows of the table).
    """

    name = "seq2seq"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.source_key = config.get("source_key", "pt")
        self.target_key = config.get("target_key", "en")
        self.source_length = int(config.get("source_length", 128))
        self.target_length = int(config.get("target_length", 128))
        self.lower_case = bool(config.get("lower_case", True))
        split, size = config.get("vocab_split", "train"), config.get("vocab_size", 8000)
        self.source_vocab, self.target_vocab = (
            textkit.wordpiece_vocabulary(
                text_utils.split_texts(source, split, key),
                size,
                textkit.SEQ2SEQ_TOKENS,
                self.lower_case,
            )
            for key in (self.source_key, self.target_key)
        )
        self.source_tokenizer = WordpieceTokenizer(self.source_vocab, self.lower_case)
        self.target_tokenizer = WordpieceTokenizer(self.target_vocab, self.lower_case)
        self.start_id, self.end_id = self.target_vocab.index(START), self.target_vocab.index(END)
        self._bleu_pairs = self._greedy = None

    def encode_source(self, texts):
        ids = self.source_tokenizer.tokenize(texts)
        v = self.source_vocab
        return pack(ids, self.source_length, v.index(START), v.index(END))

    def inputs(self, ds):
        def encode(examples):
            target = pack(
                self.target_tokenizer.tokenize(examples[self.target_key]),
                self.target_length + 1,
                self.start_id,
                self.end_id,
            )
            source = self.encode_source(examples[self.source_key])
            return (source, target[:, :-1]), target[:, 1:]

        return ds.batch(256).map(encode).unbatch()

    def model_overrides(self):
        return {
            "source_vocab_size": len(self.source_vocab),
            "target_vocab_size": len(self.target_vocab),
            "max_source_length": self.source_length,
            "max_target_length": self.target_length,
            "source_length": self.source_length,
            "target_length": self.target_length,
        }

    # -- decoding and BLEU --
    def translate(self, model, texts, decode=None, batch_size=64) -> list[str]:
        """Source strings -> translations (detokenized wordpieces), greedy or beam search."""
        decode = decode or self.config.get("decode", "greedy")
        if decode not in ("greedy", "beam"):
            raise ValueError(f"decode must be 'greedy' or 'beam', got {decode!r}")
        if self._greedy is None or self._greedy[0] is not model:
            fn = tf.function(
                lambda source: textkit.greedy_decode(
                    model, source, self.target_length, self.start_id, self.end_id
                )
            )
            self._greedy = (model, fn)
        out = []
        for i in range(0, len(texts), batch_size):
            source = self.encode_source(tf.constant(texts[i : i + batch_size]))
            if decode == "greedy":
                ids = self._greedy[1](source)
            else:
                ids = textkit.beam_search(
                    model,
                    source,
                    self.target_length,
                    self.start_id,
                    self.end_id,
                    beam_size=int(self.config.get("beam_size", 4)),
                    alpha=float(self.config.get("length_penalty", 0.6)),
                )
            out += strings(self.target_tokenizer.detokenize(tf.constant(ids)))
        return out

    def bleu_pairs(self):
        """(sources, references) of the BLEU sample, references normalized as the tokenizer
        sees text (lower-cased, punctuation split off)."""
        if self._bleu_pairs is None:
            ds = self.source.load(self.config.get("bleu_split", "test"))
            limit = int(self.config.get("bleu_examples", 0))
            if limit:
                ds = ds.take(limit)
            pairs = [
                (e[self.source_key].decode("utf-8"), e[self.target_key].decode("utf-8"))
                for e in ds.as_numpy_iterator()
            ]
            sources = [s for s, _ in pairs]
            references = strings(self.target_tokenizer.words(tf.constant([t for _, t in pairs])))
            self._bleu_pairs = (sources, references)
        return self._bleu_pairs

    def log_epoch(self, model, sample, totals, step):
        sources, references = self.bleu_pairs()
        if not sources:
            return {}
        translations = self.translate(model, sources)
        bleu = text_utils.corpus_bleu(translations, references)
        k = int(self.config.get("samples", 8))
        rows = list(zip(sources[:k], translations[:k], references[:k]))
        header = ["source", "translation", "reference"]
        tf.summary.text("translations", table(header, rows), step=step)
        return {"bleu": bleu}

    def calibration(self, train, test):
        def arrays(ds, n):
            elements = list(ds.take(n).as_numpy_iterator())
            return {
                "encoder_tokens": np.stack([s for (s, _), _ in elements]),
                "decoder_tokens": np.stack([t for (_, t), _ in elements]),
            }

        out = {}
        for prefix, ds, n in (("representative", train, 100), ("x_test", test, 100)):
            out.update({f"{prefix}.{k}": v for k, v in arrays(ds, n).items()})
        return out

    def export_info(self):
        return {
            "source_vocab": list(self.source_vocab),
            "target_vocab": list(self.target_vocab),
            "source_length": self.source_length,
            "target_length": self.target_length,
            "lower_case": self.lower_case,
        }

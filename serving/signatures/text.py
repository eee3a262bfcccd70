"""Signatures of text models: raw strings in and out, tokenization inside the graph.

A run's export_info.json carries the vocabulary: the characters of a character language model,
the wordpieces of the others. The tokenizers below rebuild tokenization from that list as graph
ops (a lookup table; tensorflow_text's BertTokenizer for wordpieces), so the SavedModel takes
text. The training tasks use these same classes, so a model is served as it was trained.

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
`tf.saved_model.load`. TF Serving's model server links the ops BertTokenizer uses (not those of
the Fast* tokenizers, tensorflow/serving#2064), which is why BertTokenizer is used here.
"""

import keras
import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder

PAD, UNK, START, END = "[PAD]", "[UNK]", "[START]", "[END]"
CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"


# ---- tokenizers -------------------------------------------------------------------------------


class CharTokenizer(tf.Module):
    """Characters <-> ids, an id being the character's index in `chars`. Characters outside the
    vocabulary are dropped when encoding."""

    def __init__(self, chars):
        super().__init__(name="char_tokenizer")
        self.vocab_size = len(chars)
        self._chars = tf.constant(list(chars))
        init = tf.lookup.KeyValueTensorInitializer(
            self._chars, tf.range(self.vocab_size, dtype=tf.int32)
        )
        self._table = tf.lookup.StaticHashTable(init, default_value=-1)

    def encode(self, text):
        """String scalar -> int32 [n]."""
        ids = self._table.lookup(tf.strings.unicode_split(text, "UTF-8"))
        return tf.boolean_mask(ids, ids >= 0)

    def decode(self, ids):
        """Int ids [..., n] -> strings [...]."""
        return tf.strings.reduce_join(tf.gather(self._chars, ids), axis=-1)


class WordpieceTokenizer(tf.Module):
    """BERT's tokenization over a wordpiece vocabulary (continuations marked `##`, reserved tokens
    in brackets, `[PAD]` first): lower-casing and accent stripping (if `lower_case`), splitting
    on whitespace and punctuation, then greedy longest-match wordpieces (tensorflow_text's
    BertTokenizer).
    """

    def __init__(self, vocab, lower_case=True):
        import tensorflow_text

        super().__init__(name="wordpiece_tokenizer")
        vocab = list(vocab)
        if vocab[0] != PAD or UNK not in vocab:
            raise ValueError(f"a wordpiece vocabulary starts with {PAD} and holds {UNK}")
        self.vocab_size = len(vocab)
        self.unk_id = vocab.index(UNK)
        self._vocab = tf.constant(vocab)
        self._reserved = tf.constant([t.startswith("[") and t.endswith("]") for t in vocab])
        init = tf.lookup.KeyValueTensorInitializer(
            self._vocab, tf.range(self.vocab_size, dtype=tf.int64)
        )
        self._table = tf.lookup.StaticVocabularyTable(init, num_oov_buckets=1)
        self._bert = tensorflow_text.BertTokenizer(
            self._table, token_out_type=tf.int64, unknown_token=UNK, lower_case=lower_case
        )
        # the first half of BertTokenizer (not exported at the package's top level)
        from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer

        self._words = BasicTokenizer(lower_case=lower_case)

    def tokenize(self, texts):
        """Strings [N] -> ragged int32 ids [N, (n)]."""
        ids = self._bert.tokenize(texts).merge_dims(-2, -1)
        ids = tf.ragged.map_flat_values(
            lambda x: tf.where(x < self.vocab_size, x, self.unk_id), ids
        )
        return tf.cast(ids, tf.int32)

    def detokenize(self, ids, keep=()):
        """Ids [N, T] (dense or ragged) -> strings [N]: reserved tokens dropped (but those in
        `keep`), wordpieces joined into words, words and punctuation separated by spaces."""
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        dropped = tf.gather(self._reserved, ids)
        for token_id in keep:
            dropped = dropped & (ids != token_id)
        ids = tf.ragged.boolean_mask(ids, ~dropped)
        text = tf.strings.reduce_join(tf.gather(self._vocab, ids), axis=-1, separator=" ")
        return tf.strings.regex_replace(text, " ##", "")

    def words(self, texts):
        """Strings [N] -> the same text normalized as the tokenizer sees it (lower-cased, words
        and punctuation separated by single spaces): what a detokenized output is compared to."""
        return tf.strings.reduce_join(self._words.tokenize(texts), axis=-1, separator=" ")


def pack(ids, length, start_id=None, end_id=None):
    """Ragged ids [N, (n)] -> int32 [N, length]: `start_id`, the ids cut to fit, `end_id`, then
    zeros (padding)."""
    room = length - (start_id is not None) - (end_id is not None)
    ids = tf.cast(ids[:, :room], tf.int32)
    rows = ids.nrows()
    parts = [ids]
    if start_id is not None:
        parts.insert(0, tf.RaggedTensor.from_tensor(tf.fill([rows, 1], start_id)))
    if end_id is not None:
        parts.append(tf.RaggedTensor.from_tensor(tf.fill([rows, 1], end_id)))
    ids = tf.concat(parts, axis=1) if len(parts) > 1 else ids
    return ids.to_tensor(default_value=0, shape=[None, length])


def call_on_tokens(model, tokens, training=False):
    """Run a model whose first input is token ids; any further input (BERT's segment ids) gets
    zeros of the same shape."""
    if len(model.inputs) == 1:
        return model(tokens, training=training)
    return model([tokens] + [tf.zeros_like(tokens)] * (len(model.inputs) - 1), training=training)


# ---- decoding ---------------------------------------------------------------------------------


def greedy_decode(model, source, target_length, start_id, end_id):
    """Greedy decoding of an encoder-decoder model(encoder_tokens, decoder_tokens) -> logits.

    Source ids int32 [N, S] -> int32 [N, target_length]: the tokens after `start_id`, up to and
    including `end_id`, zeros after. The decoder input is a fixed [N, target_length] buffer filled
    one position per step; decoder self-attention is causal, so the zeros ahead change nothing.
    """
    n = tf.shape(source)[0]
    positions = tf.range(target_length)[None, :]
    decoder_in = tf.where(positions == 0, start_id, tf.zeros([n, target_length], tf.int32))
    out = tf.zeros([n, target_length], tf.int32)
    done = tf.zeros([n], tf.bool)

    def step(t, decoder_in, out, done):
        logits = model([source, decoder_in], training=False)
        token = tf.argmax(tf.gather(logits, t, axis=1), axis=-1, output_type=tf.int32)
        token = tf.where(done, 0, token)
        out = tf.where(positions == t, token[:, None], out)
        decoder_in = tf.where(positions == t + 1, token[:, None], decoder_in)
        return t + 1, decoder_in, out, done | tf.equal(token, end_id)

    _, _, out, _ = tf.while_loop(
        lambda t, _, __, done: (t < target_length) & ~tf.reduce_all(done),
        step,
        (tf.constant(0), decoder_in, out, done),
    )
    return out


def _pick(logits, temperature, seed):
    """One token from logits [V]: sampled at `temperature`, or the argmax when it is 0."""
    logits = tf.cast(logits, tf.float32)
    scaled = logits / tf.maximum(temperature, 1e-6)
    sampled = tf.random.stateless_categorical(scaled[None], 1, seed, dtype=tf.int32)[0, 0]
    return tf.where(temperature > 0, sampled, tf.argmax(logits, output_type=tf.int32))


def step_model(model):
    """For a recurrent language model (char_rnn: `embedding`, LSTMs, `logits`), the same network
    with explicit LSTM state (zoo.sequence.char_rnn.char_rnn_step) and its weights; else None."""
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    if not lstms:
        return None
    from zoo.sequence.char_rnn import char_rnn_step

    embedding = model.get_layer("embedding")
    return char_rnn_step(
        vocab_size=embedding.input_dim,
        embed_dim=embedding.output_dim,
        units=lstms[0].units,
        num_layers=len(lstms),
        weights_from=model,
    )


class Generator(tf.Module):
    """Text from a character language model: a prompt, then `max_new_tokens` characters, each
    sampled from the model's next-character distribution.

    A recurrent model runs through its step twin, carrying the LSTM state (the prompt once, then
    one character per step); a Transformer model re-reads the last `context` characters at every
    step (right-padded to `context`: attention is causal, so the padding changes nothing). Every
    prompt draws from its own stateless random stream, fixed by `seed`.
    """

    def __init__(self, model, chars, context):
        super().__init__(name="generator")
        self.model = model
        self.context = int(context)
        self.tokenizer = CharTokenizer(chars)
        self.start_id = list(chars).index("\n") if "\n" in chars else 0
        self.step = step_model(model)

    def refresh(self):
        """Copy the model's current weights into the step twin (after more training)."""
        if self.step is not None:
            from zoo.sequence.layers import transfer_weights

            transfer_weights(self.model, self.step)

    def generate(self, prompt, max_new_tokens, temperature, seed):
        """Prompt strings (any shape) -> {"text": prompt + completion, "completion"}."""
        prompt = tf.convert_to_tensor(prompt, tf.string)
        flat = tf.reshape(prompt, [-1])
        rows = tf.range(tf.size(flat, out_type=tf.int64), dtype=tf.int64)
        seed = tf.cast(seed, tf.int64)
        temperature = tf.cast(temperature, tf.float32)

        def one(args):
            text, row = args
            ids = self.tokenizer.encode(text)
            ids = tf.cond(tf.size(ids) > 0, lambda: ids, lambda: tf.constant([self.start_id]))
            sample = self._recurrent if self.step is not None else self._windowed
            new = sample(ids, max_new_tokens, temperature, seed, row)
            return self.tokenizer.decode(new)

        completion = tf.map_fn(one, (flat, rows), fn_output_signature=tf.string)
        return {
            "text": tf.reshape(flat + completion, tf.shape(prompt)),
            "completion": tf.reshape(completion, tf.shape(prompt)),
        }

    def _seed(self, seed, row, i):
        return tf.stack([seed, row * 1_000_003 + tf.cast(i, tf.int64)])

    def _windowed(self, ids, max_new_tokens, temperature, seed, row):
        context, prompt_length = self.context, tf.size(ids)

        def body(i, ids):
            window = ids[tf.maximum(tf.size(ids) - context, 0) :]
            k = tf.size(window)
            tokens = tf.ensure_shape(tf.pad(window, [[0, context - k]])[None], [1, context])
            logits = self.model(tokens, training=False)[0, k - 1]
            token = _pick(logits, temperature, self._seed(seed, row, i))
            return i + 1, tf.concat([ids, token[None]], 0)

        _, ids = tf.while_loop(
            lambda i, _: i < max_new_tokens,
            body,
            (tf.constant(0), ids),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None])),
        )
        return ids[prompt_length:]

    def _recurrent(self, ids, max_new_tokens, temperature, seed, row):
        names = [t.name for t in self.step.inputs if t.name != "tokens"]
        sizes = {t.name: t.shape[-1] for t in self.step.inputs}
        zeros = {name: tf.zeros([1, sizes[name]]) for name in names}
        out = self.step({"tokens": ids[None], **zeros}, training=False)
        logits = out["logits"][0, -1]
        states = {name: out[name] for name in names}
        new = tf.TensorArray(tf.int32, size=max_new_tokens)

        def body(i, logits, states, new):
            token = _pick(logits, temperature, self._seed(seed, row, i))
            out = self.step({"tokens": token[None, None], **states}, training=False)
            return i + 1, out["logits"][0, -1], {n: out[n] for n in names}, new.write(i, token)

        _, _, _, new = tf.while_loop(
            lambda i, *_: i < max_new_tokens, body, (tf.constant(0), logits, states, new)
        )
        return new.stack()


# ---- TFLite-friendly twins --------------------------------------------------------------------


def unrolled(model):
    """The model with every LSTM unrolled (same weights, a static graph: what TFLite converts
    to builtin ops); the model itself when it has none."""
    if not any(isinstance(layer, keras.layers.LSTM) for layer in model.layers):
        return model

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.LSTM):
            config["unroll"] = True
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin


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

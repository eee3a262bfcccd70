"""Decoding: text out of a trained model, as TensorFlow graph ops (greedy, sampled) or eagerly
(beam search).

- `greedy_decode`: an encoder-decoder's translation, one token per step inside a tf.while_loop
  (what the `translate` signature runs);
- `beam_search`: the same with a beam, eagerly, for evaluation;
- `beam_decode`: the same beam search as graph ops (tf.while_loop; the beam size and the length
  may be tensors), what a captioning export's `caption_image_bytes` runs;
- `Generator`: text from a character language model (char-rnn through its step twin, a
  Transformer through a sliding window), sampled at a temperature or greedy.

The source of the encoder-decoder decoders is the model's first input: token ids for a
translation model, images for a captioner. With `encoder` (a model of the source alone), the
source is encoded once and `model` is the decoder taking [encoded, decoder_tokens] (a captioner's
`image_encoder` and `caption_decoder`: the image is not re-read at every step).
"""

import numpy as np
import tensorflow as tf

from textkit.tokenizers import CharTokenizer
from zoo.sequence import step_model, transfer_weights


def greedy_decode(model, source, target_length, start_id, end_id, encoder=None):
    """Greedy decoding of an encoder-decoder model(encoder_tokens, decoder_tokens) -> logits.

    Source ids int32 [N, S] (or images, or `encoder`'s input) -> int32 [N, target_length]: the
    tokens after `start_id`, up to and including `end_id`, zeros after. The decoder input is a
    fixed [N, target_length] buffer filled one position per step; decoder self-attention is
    causal, so the zeros ahead change nothing.
    """
    source = tf.convert_to_tensor(source)
    if encoder is not None:
        source = encoder(source, training=False)
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


def beam_search(
    model, source, target_length, start_id, end_id, beam_size=4, alpha=0.0, encoder=None
):
    """Beam-search decoding of an encoder-decoder model(encoder_tokens, decoder_tokens) -> logits.

    Source ids [N, S] -> int32 [N, target_length], laid out as greedy_decode's: the tokens after
    `start_id` up to and including `end_id`, zeros after. Beams are ranked by the sum of their
    log-probabilities; the final choice divides it by the GNMT length penalty
    ((5 + length) / 6) ** alpha (Wu et al. 2016; alpha 0: none). A finished beam only grows by
    padding, at no cost. With beam_size 1 this is greedy decoding. Runs eagerly, one model call
    per position, on [N * beam_size] rows.
    """
    if encoder is not None:
        source = encoder(tf.convert_to_tensor(source), training=False)
    source = tf.convert_to_tensor(source, tf.int32 if encoder is None else None)
    n, k, length = int(source.shape[0]), int(beam_size), int(target_length)
    sources = tf.repeat(source, k, axis=0)
    tokens = np.zeros((n, k, length), np.int32)
    scores = np.full((n, k), -1e9, np.float64)
    scores[:, 0] = 0.0  # all beams start as one: only the first may grow at the first step
    finished = np.zeros((n, k), bool)
    lengths = np.zeros((n, k), np.int64)
    rows = np.arange(n)[:, None]
    for t in range(length):
        if finished.all():
            break
        decoder_in = np.concatenate(
            [np.full((n, k, 1), start_id, np.int32), tokens[:, :, :-1]], axis=-1
        ).reshape(n * k, length)
        logits = model([sources, tf.constant(decoder_in)], training=False)[:, t, :]
        logp = tf.nn.log_softmax(tf.cast(logits, tf.float32)).numpy().astype(np.float64)
        vocab = logp.shape[-1]
        logp = logp.reshape(n, k, vocab)
        pad_only = np.full(vocab, -1e9)
        pad_only[0] = 0.0
        logp = np.where(finished[..., None], pad_only, logp)
        candidates = (scores[..., None] + logp).reshape(n, k * vocab)
        # the k best, ties to the lower index (as argmax and top_k break them)
        best = np.argsort(-candidates, axis=-1, kind="stable")[:, :k]
        parent, token = best // vocab, (best % vocab).astype(np.int32)
        tokens, finished = tokens[rows, parent], finished[rows, parent]
        lengths = lengths[rows, parent] + ~finished
        tokens[:, :, t] = token
        scores = candidates[rows, best]
        finished = finished | (token == end_id)
    normalized = scores / ((5.0 + lengths) / 6.0) ** alpha
    return tokens[np.arange(n), normalized.argmax(axis=-1)]


def beam_decode(
    model,
    source,
    target_length,
    start_id,
    end_id,
    beam_size=4,
    max_length=None,
    alpha=0.0,
    encoder=None,
):
    """`beam_search` as graph ops: the same beams, scores and length penalty in a tf.while_loop,
    with `beam_size` and `max_length` (<= target_length; default all of it) possibly tensors.

    Source [N, ...] -> int32 [N, target_length] laid out as greedy_decode's, zeros past
    `max_length`. Log-probabilities add up in float32 (beam_search's in float64), so two beams
    within rounding of each other may rank the other way.
    """
    source = tf.convert_to_tensor(source)
    if encoder is not None:
        source = encoder(source, training=False)
    k = tf.convert_to_tensor(beam_size, tf.int32)
    length = target_length if max_length is None else max_length
    length = tf.minimum(tf.convert_to_tensor(length, tf.int32), target_length)
    n = tf.shape(source)[0]
    sources = tf.repeat(source, k, axis=0)
    positions = tf.range(target_length)
    tokens = tf.zeros([n, k, target_length], tf.int32)
    scores = tf.tile(tf.concat([[0.0], tf.fill([k - 1], -1e9)], 0)[None], [n, 1])
    finished = tf.zeros([n, k], tf.bool)
    lengths = tf.zeros([n, k], tf.float32)

    def step(t, tokens, scores, finished, lengths):
        start = tf.fill([n, k, 1], tf.cast(start_id, tf.int32))
        decoder_in = tf.reshape(tf.concat([start, tokens[:, :, :-1]], -1), [n * k, target_length])
        logits = tf.gather(model([sources, decoder_in], training=False), t, axis=1)
        logp = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        vocab = tf.shape(logp)[-1]
        logp = tf.reshape(logp, [n, k, vocab])
        pad_only = tf.where(tf.range(vocab) == 0, 0.0, -1e9)  # a finished beam only pads
        logp = tf.where(finished[..., None], pad_only[None, None], logp)
        candidates = tf.reshape(scores[..., None] + logp, [n, k * vocab])
        scores, best = tf.math.top_k(candidates, k)  # ties to the lower index, as beam_search
        parent, token = best // vocab, best % vocab
        tokens = tf.gather(tokens, parent, batch_dims=1)
        finished = tf.gather(finished, parent, batch_dims=1)
        lengths = tf.gather(lengths, parent, batch_dims=1) + tf.cast(~finished, tf.float32)
        tokens = tf.where(positions == t, token[..., None], tokens)
        return t + 1, tokens, scores, finished | tf.equal(token, end_id), lengths

    _, tokens, scores, _, lengths = tf.while_loop(
        lambda t, _, __, finished, ___: (t < length) & ~tf.reduce_all(finished),
        step,
        (tf.constant(0), tokens, scores, finished, lengths),
        shape_invariants=(
            tf.TensorShape([]),
            tf.TensorShape([None, None, target_length]),
            tf.TensorShape([None, None]),
            tf.TensorShape([None, None]),
            tf.TensorShape([None, None]),
        ),
    )
    normalized = scores / ((5.0 + lengths) / 6.0) ** alpha
    best = tf.argmax(normalized, axis=-1, output_type=tf.int32)
    return tf.gather(tokens, best, batch_dims=1)

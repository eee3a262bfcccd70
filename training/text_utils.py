"""Text helpers of the sequence tasks: vocabularies built from a training split, corpus BLEU, and
beam search. Tokenizers and greedy decoding live in serving/signatures/text.py, which the tasks
use too, so a model is trained on exactly the tokenization its export serves."""

import collections
import math

import numpy as np
import tensorflow as tf

from serving.signatures.text import CLS, END, MASK, PAD, SEP, START, UNK

SEQ2SEQ_TOKENS = [PAD, UNK, START, END]
BERT_TOKENS = [PAD, UNK, CLS, SEP, MASK]


def split_texts(source, split, key) -> tf.data.Dataset:
    """The strings under `key` of one split of a data source."""
    return source.load(split).map(lambda example: example[key])


def char_vocabulary(text: str) -> list[str]:
    """The sorted characters of `text` (nanoGPT's shakespeare_char: 65 of them)."""
    return sorted(set(text))


def wordpiece_vocabulary(texts: tf.data.Dataset, vocab_size, reserved, lower_case=True):
    """A wordpiece vocabulary learnt from a data set of strings (tensorflow_text's
    bert_vocab_from_dataset, as in the TensorFlow subword-tokenizer guide): `reserved` first,
    then characters and wordpieces, about `vocab_size` in all."""
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as bert_vocab

    return bert_vocab.bert_vocab_from_dataset(
        texts.batch(1000).prefetch(2),
        vocab_size=int(vocab_size),
        reserved_tokens=list(reserved),
        bert_tokenizer_params={"lower_case": lower_case},
        learn_params={},
    )


# ---- BLEU -------------------------------------------------------------------------------------


def _ngrams(words, n):
    return collections.Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(hypotheses, references, max_order=4, smooth=False) -> float:
    """Corpus BLEU (Papineni et al. 2002) in 0..100, of whitespace-tokenized strings.

    `references[i]` is one string or a list of them. N-gram counts are clipped by the most any one
    reference holds, summed over the corpus, and the geometric mean of the 1..`max_order`-gram
    precisions is scaled by the brevity penalty exp(1 - r/c) when the hypotheses' length c is
    below r, the sum of the reference lengths closest to each hypothesis. Without `smooth`, a
    corpus with no matching n-gram of some order scores 0; `smooth` adds one to every count
    (Lin & Och 2004), for sentence-level scores.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    matches, totals = [0] * max_order, [0] * max_order
    hyp_length = ref_length = 0
    for hypothesis, refs in zip(hypotheses, references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        words = hypothesis.split()
        ref_words = [r.split() for r in refs]
        hyp_length += len(words)
        ref_length += min((abs(len(r) - len(words)), len(r)) for r in ref_words)[1]
        for n in range(1, max_order + 1):
            counts = _ngrams(words, n)
            most = collections.Counter()
            for r in ref_words:
                most |= _ngrams(r, n)
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(len(words) - n + 1, 0)
    if hyp_length == 0:
        return 0.0
    add = 1.0 if smooth else 0.0
    if not smooth and min(matches) == 0:
        return 0.0
    log_precision = sum(
        math.log((m + add) / (t + add)) if t + add > 0 else -math.inf
        for m, t in zip(matches, totals)
    )
    if log_precision == -math.inf:
        return 0.0
    brevity = 1.0 if hyp_length > ref_length else math.exp(1 - ref_length / hyp_length)
    return 100.0 * brevity * math.exp(log_precision / max_order)


# ---- beam search ------------------------------------------------------------------------------


def beam_search(model, source, target_length, start_id, end_id, beam_size=4, alpha=0.0):
    """Beam-search decoding of an encoder-decoder model(encoder_tokens, decoder_tokens) -> logits.

    Source ids [N, S] -> int32 [N, target_length], laid out as greedy_decode's: the tokens after
    `start_id` up to and including `end_id`, zeros after. Beams are ranked by the sum of their
    log-probabilities; the final choice divides it by the GNMT length penalty
    ((5 + length) / 6) ** alpha (Wu et al. 2016; alpha 0: none). A finished beam only grows by
    padding, at no cost. With beam_size 1 this is greedy decoding. Runs eagerly, one model call
    per position, on [N * beam_size] rows.
    """
    source = tf.convert_to_tensor(source, tf.int32)
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

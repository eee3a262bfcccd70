"""Text helpers of the sequence tasks: the strings of a split, and corpus BLEU (sacrebleu).

Tokenizers, vocabularies and decoding live in textkit/, which the exported SavedModels use too,
so a model is trained on exactly the tokenization its export serves."""

import sacrebleu
import tensorflow as tf


def split_texts(source, split, key) -> tf.data.Dataset:
    """The strings under `key` of one split of a data source."""
    return source.load(split).map(lambda example: example[key])


def corpus_bleu(hypotheses, references) -> float:
    """Corpus BLEU in 0..100 as papers report it: sacrebleu's defaults (13a tokenization, 4-grams,
    no smoothing, the brevity penalty over the corpus). `references[i]` is one string or a list of
    them (any number per hypothesis)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    most = max((len(r) for r in refs), default=0)
    # sacrebleu takes reference *streams*: the k-th reference of every hypothesis, None if absent
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(most)]
    return sacrebleu.corpus_bleu(list(hypotheses), streams).score

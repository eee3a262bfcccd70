"""Tokenizers as TensorFlow graph ops, and the vocabularies they read.

A character vocabulary is the sorted characters of the training text; a wordpiece vocabulary is
learnt from the training split with tensorflow_text (BERT-style: reserved tokens in brackets
first, continuations marked `##`). The tokenizers rebuild tokenization from that list as graph
ops (a lookup table; tensorflow_text's BertTokenizer for wordpieces), so the training tasks and
the exported SavedModel tokenize the same way: a model is served as it was trained.

Wordpiece tokenization needs tensorflow_text's ops wherever a graph using it is loaded
(`import tensorflow_text` before `tf.saved_model.load`). TF Serving's model server links the ops
BertTokenizer uses (not those of the Fast* tokenizers, tensorflow/serving#2064), which is why
BertTokenizer is used here.
"""

import tensorflow as tf

PAD, UNK, START, END = "[PAD]", "[UNK]", "[START]", "[END]"
CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"
SEQ2SEQ_TOKENS = [PAD, UNK, START, END]
BERT_TOKENS = [PAD, UNK, CLS, SEP, MASK]


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


# ---- vocabularies ------------------------------------------------------------------------------


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

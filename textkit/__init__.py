"""Text processing shared by training and serving: tokenizers and decoding as TensorFlow ops.

Training tokenizes its data and decodes its samples with these; the exported SavedModels carry
the same ops, so a model is served exactly as it was trained. It stands on zoo (the pure-Keras
model variants it decodes through) and TensorFlow, and imports neither training nor serving.
"""

from textkit.decoding import Generator, beam_decode, beam_search, greedy_decode
from textkit.tokenizers import (
    BERT_TOKENS,
    CLS,
    END,
    MASK,
    PAD,
    SEP,
    SEQ2SEQ_TOKENS,
    START,
    UNK,
    CharTokenizer,
    WordpieceTokenizer,
    char_vocabulary,
    pack,
    wordpiece_vocabulary,
)

__all__ = [
    "BERT_TOKENS",
    "CLS",
    "END",
    "MASK",
    "PAD",
    "SEP",
    "SEQ2SEQ_TOKENS",
    "START",
    "UNK",
    "CharTokenizer",
    "Generator",
    "WordpieceTokenizer",
    "beam_decode",
    "beam_search",
    "char_vocabulary",
    "greedy_decode",
    "pack",
    "wordpiece_vocabulary",
]

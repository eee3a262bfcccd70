"""Text and sequence models: one module per family."""

from zoo.sequence import bert, char_rnn, gpt, lstm, transformer  # noqa: F401

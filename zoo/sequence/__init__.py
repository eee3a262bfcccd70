"""Text and sequence models: one module per family; `layers` and `variants` are shared."""

from zoo.sequence import bert, char_rnn, gpt, lstm, transformer  # noqa: F401
from zoo.sequence.layers import transfer_weights
from zoo.sequence.variants import call_on_tokens, step_model, unrolled

__all__ = ["call_on_tokens", "step_model", "transfer_weights", "unrolled"]

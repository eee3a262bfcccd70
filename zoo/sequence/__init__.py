"""Text and sequence models: one module per family."""

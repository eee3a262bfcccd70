"""Generative models: one module per family."""

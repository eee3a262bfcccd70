"""Heatmaps as pictures (numpy): a jet colour map, and the heatmap blended over its image."""

import numpy as np


def colorize(heatmaps) -> np.ndarray:
    """Heatmaps [..., H, W] in 0..1 -> uint8 RGB [..., H, W, 3], blue (0) to red (1) as in jet."""
    h = np.clip(np.asarray(heatmaps, dtype=np.float32), 0.0, 1.0)[..., None]
    rgb = np.clip(1.5 - np.abs(4.0 * h - np.array([3.0, 2.0, 1.0], np.float32)), 0.0, 1.0)
    return (rgb * 255.0).round().astype(np.uint8)


def overlay(images, heatmaps, alpha=0.5) -> np.ndarray:
    """Images [N,H,W,C] (0..255, C 1 or 3) with their heatmaps [N,H,W] blended over them:
    uint8 RGB [N,H,W,3], `alpha` of the colour map over the image in grey."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 255.0)
    grey = images.mean(axis=-1, keepdims=True) if images.shape[-1] != 1 else images
    colour = colorize(heatmaps).astype(np.float32)
    blended = (1.0 - alpha) * np.repeat(grey, 3, axis=-1) + alpha * colour
    return blended.round().astype(np.uint8)

"""Pictures for TensorBoard, drawn with Pillow: labelled image grids and confusion matrices."""

import math

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

_FONT = ImageFont.load_default()


def to_uint8(images) -> np.ndarray:
    """Batch of HxWxC pixel images (0..255 floats or uint8) -> uint8 RGB."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0, 255).round().astype(np.uint8)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images[..., :3]


def grid(images, captions=None, colors=None, columns=None, cell=84) -> np.ndarray:
    """Images in a grid, each scaled to `cell` pixels with an optional caption under it."""
    images = to_uint8(images)
    n = len(images)
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    caption_h = 14 if captions is not None else 0
    canvas = Image.new("RGB", (columns * cell, rows * (cell + caption_h)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, image in enumerate(images):
        x, y = (i % columns) * cell, (i // columns) * (cell + caption_h)
        canvas.paste(
            Image.fromarray(image).resize((cell - 4, cell - 4), Image.NEAREST), (x + 2, y + 2)
        )
        if captions is not None:
            color = colors[i] if colors is not None else "black"
            draw.text((x + 3, y + cell - 1), str(captions[i])[:14], fill=color, font=_FONT)
    return np.asarray(canvas)


def confusion_matrix_image(matrix, names, cell=34) -> np.ndarray:
    """A heat map of counts, true classes down, predicted across, counts written in the cells."""
    matrix = np.asarray(matrix, dtype=np.int64)
    k = len(matrix)
    margin = 60
    size = (margin + k * cell, margin + k * cell)
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    row_totals = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    share = matrix / row_totals
    for t in range(k):
        for p in range(k):
            shade = int(255 - 200 * share[t, p])
            fill = (shade, shade, 255) if t == p else (255, shade, shade)
            box = (
                margin + p * cell,
                margin + t * cell,
                margin + (p + 1) * cell,
                margin + (t + 1) * cell,
            )
            draw.rectangle(box, fill=fill, outline="grey")
            draw.text((box[0] + 3, box[1] + 10), str(matrix[t, p]), fill="black", font=_FONT)
    for i, name in enumerate(names):
        draw.text((margin + i * cell + 3, margin - 14), str(name)[:5], fill="black", font=_FONT)
        draw.text((4, margin + i * cell + 10), str(name)[:8], fill="black", font=_FONT)
    draw.text((margin, 4), "predicted ->", fill="black", font=_FONT)
    draw.text((4, 24), "true (rows)", fill="black", font=_FONT)
    return np.asarray(canvas)


def image(tag, picture, step):
    tf.summary.image(tag, picture[None], step=step)

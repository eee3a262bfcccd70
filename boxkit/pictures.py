"""Boxes drawn over an image with their class names (and scores), with Pillow: TensorBoard's
pictures of a detector's predictions and `python -m serving predict --draw`."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLORS = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip
_FONT = ImageFont.load_default()


def draw_boxes(image, boxes, classes, class_names=None, scores=None, min_score=0.0, scale=1):
    """`image` (HxW, HxWx1 or HxWx3; 0..255) as uint8 RGB, `scale` times larger (nearest), with
    each box (ymin, xmin, ymax, xmax, normalized) outlined in its class's colour and labelled
    "name score"; boxes scoring under `min_score` are left out."""
    pixels = np.clip(np.asarray(image, np.float32), 0, 255).round().astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[-1] < 3):
        raise ValueError(f"expected an HxW, HxWx1 or HxWx3 image, not shape {pixels.shape}")
    canvas = Image.fromarray(pixels if pixels.ndim == 2 else pixels[..., :3]).convert("RGB")
    if scale != 1:
        canvas = canvas.resize((canvas.width * scale, canvas.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    size = np.array([canvas.height, canvas.width] * 2, np.float64)
    for j, (box, cls) in enumerate(zip(np.asarray(boxes, np.float64), np.asarray(classes))):
        score = None if scores is None else float(scores[j])
        if score is not None and score < min_score:
            continue
        y1, x1, y2, x2 = box * size
        color = COLORS[int(cls) % len(COLORS)]
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=color, width=1)
        name = str(class_names[int(cls)]) if class_names is not None else str(int(cls))
        text = name if score is None else f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=_FONT)
        top_y = y1 - (bottom - top) - 2 if y1 - (bottom - top) - 2 >= 0 else y1
        draw.rectangle((x1, top_y, x1 + right - left + 2, top_y + bottom - top + 2), fill=color)
        draw.text((x1 + 1, top_y), text, fill=(0, 0, 0), font=_FONT)
    return np.asarray(canvas)

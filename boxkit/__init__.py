"""Boxes, shared by training and the exports: per-class non-max suppression as TensorFlow ops that
convert to builtin TFLite ops (`nms`), and boxes drawn over images with Pillow (`pictures`), as
textkit/ holds the tokenizers and saliency/ the heatmaps. It imports nothing of training/ or
serving/."""

from boxkit.nms import per_class_nms

__all__ = ["per_class_nms"]

"""Segmentation scores: the pixel confusion matrix and IoU per class and on average."""

import numpy as np


def confusion(labels, predicted, num_classes: int) -> np.ndarray:
    """Counts [K,K] of (true class, predicted class) over all the pixels given."""
    labels = np.asarray(labels, np.int64).ravel()
    predicted = np.asarray(predicted, np.int64).ravel()
    counts = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(confusion_matrix) -> np.ndarray:
    """IoU of each class from a confusion matrix (true classes down, predicted across); NaN for a
    class neither in the labels nor in the predictions."""
    matrix = np.asarray(confusion_matrix, np.float64)
    hits = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, hits / union, np.nan)


def mean_iou(labels, predicted, num_classes: int) -> float:
    """Mean IoU over the classes present in the labels or the predictions."""
    return float(np.nanmean(iou_per_class(confusion(labels, predicted, num_classes))))

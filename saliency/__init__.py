"""Explanation heatmaps for zoo classifiers, as TensorFlow ops: Grad-CAM, Grad-CAM++,
Integrated Gradients and SmoothGrad, plus the overlays and the sanity-check measures.

Training draws heatmaps into TensorBoard and runs `python -m training explain` with these; the
exports' `explain_image_bytes` signature carries the same ops, so a served heatmap is the one a
run shows. It stands on zoo (zoo/explain.py: the target layer and the split model) and
TensorFlow, and imports neither training nor serving.
"""

from saliency.methods import (
    METHODS,
    Explainer,
    Explanation,
    ProbabilityScores,
    explain,
    gradcam,
    integrated_gradients,
    smoothgrad,
)
from saliency.metrics import (
    deletion_curve,
    most_attributed_first,
    random_order,
    rankdata,
    spearman,
)
from saliency.pictures import colorize, overlay

__all__ = [
    "METHODS",
    "Explainer",
    "Explanation",
    "ProbabilityScores",
    "colorize",
    "deletion_curve",
    "explain",
    "gradcam",
    "integrated_gradients",
    "most_attributed_first",
    "overlay",
    "random_order",
    "rankdata",
    "smoothgrad",
    "spearman",
]

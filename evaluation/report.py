"""What the TFLite report scores, by the export's task kind (export_info.json's `task`): the
SavedModel's and each variant's outputs on the export's test sample against its truth
(calibration.npz's `y_test`, or `y_test.<name>` arrays for a structured truth).

- classification, and any kind without an entry: `accuracy` of the argmax of the compared output
  (the one first by name, `probabilities` for a classifier) where the truth is a label per row;
- segmentation: pixel `accuracy` and `mean_iou` (evaluation/segmentation.py);
- detection: COCO `map`, `map_50` and `recall` by pycocotools (evaluation/detection.py);
- embedding: `knn_accuracy` of the embeddings among themselves, each test example classified by
  its 20 nearest others (evaluation/embedding.py), and `min_cosine`, the least cosine similarity
  of a variant's embedding with the SavedModel's, where the argmax means nothing.

Each variant is also compared with the SavedModel on one output (`max_abs_diff`, and
`agreement` of the argmax where that output holds class scores): the first by name, or the
kind's own (a detector's `detection_scores`, best first).
"""

import numpy as np

from evaluation import captioning, detection, embedding, segmentation


def _accuracy(outputs, truth, info):
    return {"accuracy": _label_accuracy(outputs[compared_output(None, outputs)], truth)}


def _label_accuracy(scores, labels):
    if labels is None or not isinstance(labels, np.ndarray) or scores.ndim != labels.ndim + 1:
        return None
    return float(np.mean(scores.argmax(-1) == labels))


def _segmentation(outputs, truth, info):
    probabilities = outputs["probabilities"]
    accuracy = _label_accuracy(probabilities, truth)
    if accuracy is None:
        return {"accuracy": None, "mean_iou": None}
    iou = segmentation.mean_iou(truth, probabilities.argmax(-1), probabilities.shape[-1])
    return {"accuracy": accuracy, "mean_iou": iou}


def _detection(outputs, truth, info):
    if not isinstance(truth, dict) or not {"boxes", "classes"} <= set(truth):
        return dict.fromkeys(detection.SCORES)
    size = tuple(info.get("image_shape", (1.0, 1.0))[:2])
    return detection.report_scores(outputs, truth, size)


def _embedding(outputs, truth, info):
    if not isinstance(truth, np.ndarray) or truth.ndim != 1:
        return {"knn_accuracy": None}
    return {"knn_accuracy": embedding.knn_leave_one_out(outputs["embedding"], truth)}


# kind -> (score names, scorer(outputs, truth, info) -> {name: value or None}, compared output)
KINDS = {
    "segmentation": (("accuracy", "mean_iou"), _segmentation, None),
    "detection": (detection.SCORES, _detection, "detection_scores"),
    "embedding": (("knn_accuracy",), _embedding, "embedding"),
    "captioning": (captioning.SCORES, captioning.report_scores, "tokens"),
}
DEFAULT = (("accuracy",), _accuracy, None)


def score_names(kind) -> tuple:
    """The scores the report lists for an export of `kind`."""
    return KINDS.get(kind, DEFAULT)[0]


def scores(kind, outputs: dict, truth, info: dict) -> dict:
    """{name: value or None} for each of the kind's scores of `outputs` ({output name: array})."""
    names, scorer, _ = KINDS.get(kind, DEFAULT)
    if truth is None:
        return dict.fromkeys(names)
    return scorer(outputs, truth, info)


def compared_output(kind, outputs) -> str:
    """The output a variant is compared on with the SavedModel."""
    own = KINDS.get(kind, DEFAULT)[2]
    return own if own in outputs else sorted(outputs)[0]


def comparison(kind, outputs: dict, reference: dict) -> dict:
    """`max_abs_diff` of the compared output, and `agreement` of its argmax where it holds
    class scores (not for a kind with its own compared output)."""
    name = compared_output(kind, outputs)
    mine, theirs = np.asarray(outputs[name], np.float64), np.asarray(reference[name], np.float64)
    row = {"max_abs_diff": float(np.max(np.abs(mine - theirs)))}
    if mine.ndim >= 2 and KINDS.get(kind, DEFAULT)[2] is None:
        row["agreement"] = float(np.mean(mine.argmax(-1) == theirs.argmax(-1)))
    if kind == "embedding":
        cosine = np.sum(embedding.normalize(mine) * embedding.normalize(theirs), axis=-1)
        row["min_cosine"] = float(np.min(cosine))
    return row

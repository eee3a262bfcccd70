"""Detection scores: COCO mAP@[.5:.95], mAP@.5 and recall (AR@100), computed by pycocotools'
COCOeval from arrays; this module only builds its ground truth and results in memory.

Truth: `true_boxes` [N,M,4] (ymin, xmin, ymax, xmax, normalized to [0, 1]) and `true_classes`
[N,M] (class index, -1 for padding). Detections: `boxes` [N,D,4] in the same form, `scores`
[N,D], `classes` [N,D], with `num_detections` [N] (rows past it are ignored; None: rows with a
score above 0). Boxes are scaled to `image_size` pixels (H, W) for COCO, which measures in pixels.
The scores are over objects of every size (COCOeval's area range "all"; its small, medium and
large ranges are not evaluated, which takes a quarter of the time).
"""

import contextlib
import io

import numpy as np

SCORES = ("map", "map_50", "recall")


def coco_scores(
    true_boxes,
    true_classes,
    boxes,
    scores,
    classes,
    num_detections=None,
    image_size=(1.0, 1.0),
) -> dict:
    """{"map": mAP@[.5:.95], "map_50": mAP@.5, "recall": AR@100}, as COCOeval reports them
    (averaged over the classes that have a true box); 0.0 when nothing was detected."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    true_boxes, true_classes = np.asarray(true_boxes, np.float64), np.asarray(true_classes)
    boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
    classes = np.asarray(classes)
    if (
        true_boxes.ndim != 3
        or true_boxes.shape[-1] != 4
        or true_classes.shape != true_boxes.shape[:2]
    ):
        raise ValueError(
            f"truth must be boxes [N,M,4] and classes [N,M], not {true_boxes.shape} and "
            f"{true_classes.shape}"
        )
    if boxes.shape[:1] != true_boxes.shape[:1] or scores.shape != boxes.shape[:2]:
        raise ValueError(
            f"detections must be boxes [N,D,4], scores and classes [N,D] for the N = "
            f"{len(true_boxes)} images, not {boxes.shape}, {scores.shape}"
        )
    if num_detections is None:
        num_detections = (scores > 0).sum(axis=1)
    scale = np.array([*image_size, *image_size], np.float64)

    def xywh(box):
        y1, x1, y2, x2 = box * scale
        return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]

    annotations = []
    for i, (image_boxes, image_classes) in enumerate(zip(true_boxes, true_classes)):
        for box, cls in zip(image_boxes, image_classes):
            if cls >= 0:
                x, y, w, h = xywh(box)
                annotations.append(
                    {"id": len(annotations) + 1, "image_id": i, "category_id": int(cls) + 1,
                     "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}
                )  # fmt: skip
    if not annotations:
        raise ValueError("no true boxes to score against")
    results = [
        {"image_id": i, "category_id": int(classes[i, j]) + 1, "bbox": xywh(boxes[i, j]),
         "score": float(scores[i, j])}
        for i in range(len(boxes))
        for j in range(int(num_detections[i]))
    ]  # fmt: skip
    if not results:
        return dict.fromkeys(SCORES, 0.0)
    categories = sorted(
        {a["category_id"] for a in annotations} | {r["category_id"] for r in results}
    )
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = {
            "images": [{"id": i} for i in range(len(true_boxes))],
            "annotations": annotations,
            "categories": [{"id": c} for c in categories],
        }
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), iouType="bbox")
        # one range of areas, "all": COCO's small/medium/large would take four times as long
        evaluation.params.areaRng, evaluation.params.areaRngLbl = [[0, 1e10]], ["all"]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"map": float(stats[0]), "map_50": float(stats[1]), "recall": float(stats[8])}


def report_scores(outputs: dict, truth: dict, image_size=(1.0, 1.0)) -> dict:
    """The TFLite report's scores of a detection signature's outputs (TF Object Detection API
    names) against `truth` {"boxes", "classes"}."""
    return coco_scores(
        truth["boxes"],
        truth["classes"],
        outputs["detection_boxes"],
        outputs["detection_scores"],
        outputs["detection_classes"],
        outputs["num_detections"],
        image_size,
    )

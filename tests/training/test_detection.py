"""Object detection (zoo fcos, training/tasks/detection.py, boxkit, evaluation/detection.py) on
scenes of the real shared digits: boxes encode and decode, the focal loss is its closed form, the
NMS is a brute-force per-class greedy NMS, COCO mAP is 1 for perfect boxes and as computed by
hand for shifted ones, the augmentation moves the boxes with the pixels; a small FCOS learns to
find and read digits (mAP far above its untrained start), exports, converts to TFLite with its
NMS and mAP in the report, answers through the embedded server over REST and gRPC, and
`python -m serving predict --draw` writes the boxes over the image."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from boxkit import per_class_nms
from evaluation import detection as metrics
from tests.conftest import run_module, train_and_export
from tests.serving.conftest import ServerProcess, b64, grpc_stubs, http, predict_request
from training import data, recipes
from training.tasks import get_task
from training.tasks.base import EXAMPLES
from training.tasks.detection import centerness, giou_loss, sigmoid_focal_loss
from zoo.vision import fcos

MODEL = "fcos-digit-scenes"  # the recipe the export is named after
SMALL = [
    "train.batch_size=16",
    "train.epochs=10",
    "train.max_steps=300",  # 8 epochs of 600 scenes
    "train.eval_batch_size=100",
    'export.formats=["saved_model", "tflite"]',
    'export.tflite.variants=["float32", "int8"]',
]


@pytest.fixture(scope="module")
def scenes_spec(shared_data):
    return f"digit_scenes:folder:{shared_data / 'mnist5k'}?count=600&seed=0"


def task_for(scenes_spec, **config):
    source = data.open_source(scenes_spec)
    config = {"name": "detection", "max_objects": 5, **config}
    return get_task("detection")(config, source), source


# ---- the parts, against their definitions -------------------------------------------------------


def test_boxes_encode_and_decode_round_trip():
    rng = np.random.default_rng(0)
    yx, strides = fcos.points((64, 96), (3, 4))
    assert yx.shape == (8 * 12 + 4 * 6, 2) and set(strides) == {8.0, 16.0}
    np.testing.assert_allclose(yx[:2], [[4, 4], [4, 12]])  # cell centres, rows then columns
    corner = rng.uniform(0, 60, (len(yx), 2))
    boxes = np.concatenate([corner, corner + rng.uniform(1, 30, (len(yx), 2))], -1)
    distances = np.asarray(fcos.encode_boxes(boxes, yx))
    assert (distances < 0).any()  # locations outside their box too
    np.testing.assert_allclose(np.asarray(fcos.decode_boxes(distances, yx)), boxes, atol=1e-4)
    # the decoder: normalized, clipped boxes and sqrt(class x centerness) scores
    outputs = {
        "distances": distances[None].astype("float32"),
        "classes": np.full((1, len(yx), 2), 2.0, "float32"),
        "centerness": np.zeros((1, len(yx)), "float32"),
    }
    decoded = fcos.DecodeDetections((64, 96), (3, 4))(outputs)
    np.testing.assert_allclose(
        decoded["boxes"][0], np.clip(boxes / [64, 96, 64, 96], 0, 1), atol=1e-5
    )
    np.testing.assert_allclose(decoded["scores"], np.sqrt(0.5 / (1 + np.exp(-2.0))), rtol=1e-5)


def test_focal_loss_is_its_closed_form():
    logits = np.array([-3.0, -0.5, 0.0, 1.0, 4.0], np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    for alpha, gamma in ((0.25, 2.0), (0.5, 0.0), (0.75, 1.5)):
        positive = -alpha * (1 - p) ** gamma * np.log(p)
        negative = -(1 - alpha) * p**gamma * np.log(1 - p)
        got_pos = sigmoid_focal_loss(np.ones(5), logits, alpha, gamma).numpy()
        got_neg = sigmoid_focal_loss(np.zeros(5), logits, alpha, gamma).numpy()
        np.testing.assert_allclose(got_pos, positive, rtol=1e-5)
        np.testing.assert_allclose(got_neg, negative, rtol=1e-5)
    # gamma 0, alpha 0.5: half the binary cross-entropy
    assert sigmoid_focal_loss([1.0], [0.0], 0.5, 0.0).numpy()[0] == pytest.approx(np.log(2) / 2)


def test_giou_loss_and_centerness_by_hand():
    a = tf.constant([[0.0, 0.0, 2.0, 2.0]])
    assert giou_loss(a, a).numpy()[0] == pytest.approx(0.0, abs=1e-6)
    # half overlapping: IoU 2/6, hull = union: 1 - 1/3
    assert giou_loss(a, tf.constant([[0.0, 1.0, 2.0, 3.0]])).numpy()[0] == pytest.approx(2 / 3)
    # apart by 2: IoU 0, hull 2x6 = 12, union 8: 1 - (0 - 4/12)
    assert giou_loss(a, tf.constant([[0.0, 4.0, 2.0, 6.0]])).numpy()[0] == pytest.approx(4 / 3)
    # distances (top, left, bottom, right) 2, 4, 8, 4: sqrt(2/8 x 4/4)
    assert centerness(tf.constant([2.0, 4.0, 8.0, 4.0])).numpy() == pytest.approx(0.5)


def brute_force_nms(boxes, scores, max_detections, iou_threshold, score_threshold):
    """Greedy NMS class by class, by its definition; the best `max_detections` of all classes."""

    def iou(a, b):
        h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = h * w
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    kept = []
    for k in range(scores.shape[1]):
        order = [i for i in np.argsort(-scores[:, k]) if scores[i, k] > score_threshold]
        chosen = []
        for i in order:
            if all(iou(boxes[i], boxes[j]) <= iou_threshold for j in chosen):
                chosen.append(i)
        kept += [(float(scores[i, k]), k, i) for i in chosen[:max_detections]]
    return sorted(kept, reverse=True)[:max_detections]


def test_nms_is_a_brute_force_per_class_greedy_nms():
    rng = np.random.default_rng(1)
    n, p, k = 3, 80, 4
    corner = rng.uniform(0, 0.8, (n, p, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(0.05, 0.3, (n, p, 2))], -1)
    boxes = boxes.astype(np.float32)
    scores = rng.uniform(0, 1, (n, p, k)).astype(np.float32) ** 3
    for max_detections, iou_threshold, score_threshold in ((100, 0.5, 0.05), (20, 0.3, 0.2)):
        found = per_class_nms(
            boxes, scores, max_detections=max_detections, iou_threshold=iou_threshold,
            score_threshold=score_threshold,
        )  # fmt: skip
        assert found["detection_boxes"].shape == (n, max_detections, 4)
        assert found["detection_classes"].dtype == tf.int64
        assert found["num_detections"].dtype == tf.int32
        for image in range(n):
            expected = brute_force_nms(
                boxes[image], scores[image], max_detections, iou_threshold, score_threshold
            )
            count = int(found["num_detections"][image])
            assert count == len(expected) > 0
            got_scores = found["detection_scores"][image].numpy()
            np.testing.assert_allclose(got_scores[:count], [e[0] for e in expected], rtol=1e-6)
            assert list(found["detection_classes"][image].numpy()[:count]) == [
                e[1] for e in expected
            ]
            np.testing.assert_allclose(
                found["detection_boxes"][image].numpy()[:count],
                boxes[image][[e[2] for e in expected]],
            )
            assert not got_scores[count:].any()  # zeros past num_detections


def test_map_of_perfect_and_of_shifted_boxes():
    true_boxes = np.array([[[0.0, 0.0, 0.1, 0.1], [0.5, 0.5, 0.7, 0.6]]])  # in a 100x100 image
    true_classes = np.array([[0, 1]])
    perfect = metrics.coco_scores(
        true_boxes, true_classes, true_boxes, np.array([[0.9, 0.8]]), true_classes,
        image_size=(100, 100),
    )  # fmt: skip
    assert perfect == pytest.approx({"map": 1.0, "map_50": 1.0, "recall": 1.0}, abs=1e-12)
    # class 0's box moved 2 pixels right: IoU 8x10 / (12x10) = 2/3, a match at the IoU
    # thresholds .50, .55, .60, .65 of the ten: AP and recall 0.4 for class 0, 1.0 for class 1
    shifted = true_boxes + np.array([[[0.0, 0.02, 0.0, 0.02], [0.0, 0.0, 0.0, 0.0]]])
    scores = metrics.coco_scores(
        true_boxes, true_classes, shifted, np.array([[0.9, 0.8]]), true_classes,
        image_size=(100, 100),
    )  # fmt: skip
    assert scores["map"] == pytest.approx((0.4 + 1.0) / 2)
    assert scores["map_50"] == pytest.approx(1.0)
    assert scores["recall"] == pytest.approx((0.4 + 1.0) / 2)
    # the right box under the wrong class finds nothing; padding rows (class -1) are no boxes
    wrong = metrics.coco_scores(
        np.concatenate([true_boxes, np.zeros((1, 1, 4))], 1), np.array([[0, 1, -1]]),
        true_boxes[:, :1], np.array([[0.9]]), np.array([[1]]),
    )  # fmt: skip
    assert wrong == pytest.approx({"map": 0.0, "map_50": 0.0, "recall": 0.0}, abs=1e-12)
    with pytest.raises(ValueError, match="truth must be boxes"):
        metrics.coco_scores(true_boxes[0], true_classes, true_boxes, [[0.9, 0.8]], true_classes)


def test_scale_and_flip_move_the_boxes_with_the_pixels(scenes_spec):
    """One white rectangle per image: after the augmentation its pixels' tight box is the
    augmented box, within the blur of a bilinear resize."""
    task, _ = task_for(scenes_spec, augment="flip_scale", scale=0.3)
    rng = np.random.default_rng(2)
    moved = flipped_or_scaled = dropped = 0
    for i in range(40):
        y, x = rng.integers(0, 90, 2)
        h, w = rng.integers(8, 38, 2)
        image = np.zeros((128, 128, 1), np.float32)
        image[y : y + h, x : x + w] = 255.0
        boxes = np.zeros((5, 4), np.float32)
        boxes[0] = np.array([y, x, y + h, x + w]) / 128
        classes = np.array([3, -1, -1, -1, -1], np.int32)
        out_image, out_boxes, out_classes = (
            t.numpy() for t in task.augment(image, boxes, classes, tf.constant([i, 5]))
        )
        assert out_image.shape == (128, 128, 1) and list(out_classes[1:]) == [-1] * 4
        if out_classes[0] < 0:
            dropped += 1
            continue
        assert out_classes[0] == 3
        ink = out_image[..., 0] >= 128
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        tight = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1])
        np.testing.assert_allclose(out_boxes[0] * 128, tight, atol=1.5)
        flipped_or_scaled += not np.allclose(out_boxes[0], boxes[0])
        moved += 1
    assert moved >= 30 and flipped_or_scaled >= 25 and dropped <= 10


def test_every_digit_gets_a_location_and_targets_are_its_box(scenes_spec):
    recipe = recipes.resolve(MODEL)
    task, source = task_for(scenes_spec, size_ranges=[24, 48])
    model = zoo.build("fcos", **{**task.model_overrides(), **recipe["model"]["overrides"]})
    images, boxes, classes = next(task.inputs(source.load("train")).batch(64).as_numpy_iterator())
    targets = task.assign(model, tf.constant(boxes), tf.constant(classes))
    positive, assigned = targets["positive"].numpy(), targets["boxes"].numpy()
    for b in range(len(boxes)):
        for m in np.flatnonzero(classes[b] >= 0):
            mine = positive[b] & np.all(np.abs(assigned[b] - boxes[b, m] * 128) < 1e-3, -1)
            assert mine.any(), f"scene {b}: digit {m} has no location"
            assert set(targets["classes"].numpy()[b][mine]) == {classes[b, m]}


# ---- a small FCOS learns, exports, converts and serves ------------------------------------------


@pytest.fixture(scope="module")
def detector(scenes_spec, tmp_path_factory):
    """The recipe's FCOS (ResNet-18 of width 16, 64-channel P3-P5), 300 steps of 16 of the 600
    training scenes (the recipe: 2,000 steps of 32 of 8,000)."""
    recipe = recipes.resolve(MODEL, [f"data.dataset={scenes_spec}", *SMALL])
    return train_and_export(recipe, tmp_path_factory.mktemp("detection"))


def untrained_scores(recipe, scenes_spec):
    """The validation mAP of the same model before its first step."""
    import keras

    task, source = task_for(scenes_spec, **recipe["task"])
    keras.utils.set_random_seed(recipe["train"]["seed"])
    overrides = {**task.model_overrides(), **recipe["model"]["overrides"]}
    model = zoo.build("fcos", **overrides)
    step = tf.function(lambda batch: task.eval_step(model, batch)[EXAMPLES])
    parts = []
    for batch in task.inputs(source.load("test")).batch(100):
        parts.append({k: v.numpy() for k, v in step(batch).items()})
    examples = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return task.results({"count": 1.0, EXAMPLES: examples})


def test_a_small_fcos_learns_to_detect_digits(detector, scenes_spec):
    found = detector.metrics
    before = untrained_scores(
        json.loads((detector.run_dir / "recipe.json").read_text()), scenes_spec
    )
    assert before["map_50"] < 0.02, before  # untrained: boxes nowhere, classes at chance
    assert found["map_50"] > 0.3 and found["map"] > 0.15 and found["recall"] > 0.4, found
    assert found["map"] > 20 * max(before["map"], 0.001)
    info = json.loads((detector.run_dir / "export_info.json").read_text())
    assert info["task"] == "detection" and info["class_names"] == [str(d) for d in range(10)]
    assert info["nms"] == {"max_detections": 100, "iou_threshold": 0.6, "score_threshold": 0.05}


def test_the_tflite_report_has_the_map_and_the_nms_is_inside(detector):
    report = json.loads((detector.export_dir.parent / "tflite" / "report.json").read_text())
    assert report["task"] == "detection" and report["scores"] == ["map", "map_50", "recall"]
    assert report["test_examples"] == 600  # the whole validation split
    assert report["saved_model_map"] == pytest.approx(detector.metrics["map"], abs=0.01)
    rows = {row["variant"]: row for row in report["variants"]}
    assert "error" not in rows["float32"] and "error" not in rows["int8"], rows
    assert rows["float32"]["map"] == pytest.approx(report["saved_model_map"], abs=0.005)
    assert rows["float32"]["max_abs_diff"] < 0.01
    assert rows["int8"]["map_50"] > report["saved_model_map_50"] - 0.1, rows["int8"]
    others = {row["signature"]: row["converts"] for row in report["other_signatures"]}
    assert others == {"detect_image_bytes": False}
    table = (detector.export_dir.parent / "tflite" / "report.md").read_text()
    assert "| variant | size (bytes) | gzipped (bytes) | mAP@[.5:.95] | mAP@.5 | AR@100 |" in table
    # the NMS runs in the file (ai_edge_litert, one image): at most 100 boxes, best first
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(
        model_path=str(detector.export_dir.parent / "tflite" / "float32.tflite")
    ).get_signature_runner("serving_default")
    sample = np.load(detector.export_dir / "assets.extra" / "calibration.npz")
    out = runner(images=sample["x_test"][:1])
    count = int(out["num_detections"][0])
    assert 0 < count <= 100 and out["detection_classes"].dtype == np.int64
    assert np.all(np.diff(out["detection_scores"][0, :count]) <= 0)


@pytest.fixture(scope="module")
def served(detector, tmp_path_factory):
    log = tmp_path_factory.mktemp("detection-served") / "server.log"
    proc = ServerProcess(detector.export_dir.parent.parent, log_path=log)
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-6000:]


@pytest.fixture(scope="module")
def scenes(scenes_spec, detector, tmp_path_factory):
    """Three held-out scenes (uint8), their PNG files, and the Keras model's detections."""
    source = data.open_source(scenes_spec)
    examples = list(source.load("test").take(3).as_numpy_iterator())
    images = np.stack([e["image"] for e in examples])
    folder = tmp_path_factory.mktemp("scenes")
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"scene{i}.png")
        paths[-1].write_bytes(tf.io.encode_png(image).numpy())
    task, _ = task_for(scenes_spec)
    model = detector.model
    expected = task.detect(model, model(images.astype(np.float32), training=False))
    return images, paths, {k: v.numpy() for k, v in expected.items()}


def same_detections(got, expected, atol=1e-4):
    for i in range(len(expected["num_detections"])):
        n = int(expected["num_detections"][i])
        assert int(got["num_detections"][i]) == n
        np.testing.assert_allclose(
            np.asarray(got["detection_boxes"])[i, :n], expected["detection_boxes"][i, :n], atol=atol
        )
        assert list(np.asarray(got["detection_classes"])[i, :n]) == list(
            expected["detection_classes"][i, :n]
        )


def test_served_over_rest_as_tensors_and_as_image_bytes(served, scenes):
    images, paths, expected = scenes
    url = f"{served.url}/v1/models/{MODEL}:predict"
    status, doc = http("POST", url, {"instances": images.tolist()})
    assert status == 200, doc
    columns = {k: [p[k] for p in doc["predictions"]] for k in doc["predictions"][0]}
    assert set(columns) == {
        "detection_boxes", "detection_scores", "detection_classes", "num_detections",
    }  # fmt: skip
    assert np.array(columns["detection_boxes"]).shape == (3, 100, 4)
    same_detections(columns, expected)

    body = {
        "signature_name": "detect_image_bytes",
        "instances": [b64(p.read_bytes()) for p in paths],
    }
    status, doc = http("POST", url, body)
    assert status == 200, doc
    columns = {k: [p[k] for p in doc["predictions"]] for k in doc["predictions"][0]}
    same_detections(columns, expected)
    n = int(expected["num_detections"][0])
    assert columns["detection_labels"][0][:n] == [
        str(c) for c in expected["detection_classes"][0, :n]
    ]
    assert columns["detection_labels"][0][n:] == [""] * (100 - n)


def test_served_over_grpc(served, scenes):
    images, paths, expected = scenes
    channel, predict, _ = grpc_stubs(served.grpc_target)
    with channel:
        response = predict.Predict(predict_request(MODEL, "serving_default", {"images": images}))
        outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
        request = predict_request(
            MODEL, "detect_image_bytes", {"image_bytes": [p.read_bytes() for p in paths]}
        )
        from_bytes = {k: tf.make_ndarray(v) for k, v in predict.Predict(request).outputs.items()}
    assert outputs["detection_classes"].dtype == np.int64
    assert outputs["num_detections"].dtype == np.int32
    same_detections(outputs, expected)
    same_detections(from_bytes, expected)


def test_predict_prints_the_boxes_and_draws_them(served, scenes, tmp_path):
    images, paths, expected = scenes
    out = tmp_path / "drawn.png"
    result = run_module(
        "serving", "predict", "--model", MODEL, "--port", served.rest_port, "--draw", out, paths[0]
    )
    assert result.returncode == 0, result.stderr
    assert f"{paths[0]}  ({MODEL} v1, detect_image_bytes, REST)" in result.stdout
    confident = expected["detection_scores"][0] >= 0.3
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("  ") and
             line.strip()[0].isdigit()]  # fmt: skip
    assert len(lines) == int(confident.sum()) > 0
    first = expected["detection_classes"][0, 0], expected["detection_scores"][0, 0]
    assert lines[0][1:3] == [str(first[0]), f"{first[1]:.4f}"]
    drawn = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert drawn.shape == (256, 256, 3)  # twice the scene's size
    # the scene is grey; the boxes and labels are the only coloured pixels, on the first box
    coloured = np.abs(drawn - drawn.mean(-1, keepdims=True)).sum(-1) > 30
    y1, x1, y2, x2 = (expected["detection_boxes"][0, 0] * 256).round().astype(int)
    assert coloured.any() and coloured[max(y1 - 1, 0) : y2 + 1, max(x1 - 1, 0) : x2 + 1].any()
    # over gRPC, from the tensor signature
    result = run_module(
        "serving", "predict", "--model", MODEL, "--grpc", "--port", served.grpc_port,
        "--signature", "serving_default", paths[0],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len([line for line in result.stdout.splitlines() if line.startswith("  1. ")]) == 1


def test_mirrored_on_two_logical_cpus_matches_one_device(shared_data, tmp_path):
    """The detection steps under MirroredStrategy (2 replicas: losses summed, every replica's
    detections gathered for pycocotools) train and score as on one device. On a VGG backbone
    (no batch normalization, whose batch statistics are per replica); no score threshold, so that
    an untrained model's detections are scored too."""
    out = tmp_path / "weights.npz"
    spec = f"digit_scenes:folder:{shared_data / 'mnist5k'}?count=64&seed=0"
    overrides = {"backbone": "vgg11", "backbone_overrides": {"width": 4}, "fpn_filters": 8}
    nms = {"max_detections": 100, "iou_threshold": 0.6, "score_threshold": 0.0}
    proc = run_module(
        "tests.training.workers", "mirrored-vs-one", out, shared_data / "mnist5k", tmp_path,
        MODEL, f"data.dataset={spec}", f"model.overrides={json.dumps(overrides)}",
        f"task.nms={json.dumps(nms)}", "train.batch_size=8", "train.eval_batch_size=16",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as saved:
        one = {k.split("/", 1)[1]: saved[k] for k in saved.files if k.startswith("one_device/")}
        two = {k.split("/", 1)[1]: saved[k] for k in saved.files if k.startswith("mirrored/")}
    assert one.keys() == two.keys() and one["metric_map"] > 0
    for key in one:
        np.testing.assert_allclose(one[key], two[key], rtol=1e-4, atol=1e-5, err_msg=key)

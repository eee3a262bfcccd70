"""Semantic segmentation (training/tasks/segmentation.py, zoo unet) on scenes of the real shared
digits: the augmentation keeps the mask on the image, IoU as computed by hand, a small U-Net
learns to segment, and its export answers through the embedded server over REST and gRPC and
converts to TFLite with its mean IoU in the report."""

import json

import numpy as np
import pytest
import tensorflow as tf

from evaluation import segmentation as metrics
from tests.conftest import train_and_export
from tests.serving.conftest import ServerProcess, b64, grpc_stubs, http, predict_request
from training import data, recipes
from training.tasks import get_task

MODEL = "unet-digit-scenes"  # the recipe the export is named after
SMALL = [
    'model.overrides={"depth": 4, "filters": 8}',
    "train.batch_size=16",
    "train.epochs=10",
    "train.max_steps=300",  # 8 epochs of 600 scenes
    "optimizer.schedule=constant",
    "train.eval_batch_size=100",
    'export.formats=["saved_model", "tflite"]',
    'export.tflite.variants=["float32", "int8"]',
]


@pytest.fixture(scope="module")
def scenes_spec(shared_data):
    return f"digit_scenes:folder:{shared_data / 'mnist5k'}?count=600&seed=0"


@pytest.fixture(scope="module")
def segmenter(scenes_spec, tmp_path_factory):
    """A depth-4 U-Net with 8 filters, 300 steps on 600 scenes of the shared training digits."""
    recipe = recipes.resolve(MODEL, [f"data.dataset={scenes_spec}", *SMALL])
    return train_and_export(recipe, tmp_path_factory.mktemp("segmentation"))


def task_for(scenes_spec, **config):
    source = data.open_source(scenes_spec)
    return get_task("segmentation")({"name": "segmentation", **config}, source), source


def test_iou_as_computed_by_hand():
    labels = np.array([[0, 0, 1, 1], [2, 2, 2, 0]])
    predicted = np.array([[0, 1, 1, 1], [2, 2, 0, 0]])
    # class 0: 2 hits of 4 in the union (3 true, 3 predicted); class 1: 2 of 3; class 2: 2 of 3
    np.testing.assert_allclose(
        metrics.iou_per_class(metrics.confusion(labels, predicted, 4))[:3], [2 / 4, 2 / 3, 2 / 3]
    )
    assert np.isnan(metrics.iou_per_class(metrics.confusion(labels, predicted, 4))[3])
    assert metrics.mean_iou(labels, predicted, 4) == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)


def test_flip_and_scale_move_the_mask_with_the_image(scenes_spec):
    """Images whose pixels are 20 x their class: after the augmentation, the image still reads
    as its mask wherever the bilinear resize left it unblurred."""
    task, source = task_for(scenes_spec, augment="flip_scale", scale=0.3)
    assert task.num_classes == 11 and task.class_names[0] == "background"
    masks = [m for _, m in task.inputs(source.load("test")).take(12).as_numpy_iterator()]
    moved = 0
    for i, mask in enumerate(masks):
        image = tf.cast(mask[..., None] * 20, tf.float32)
        aug_image, aug_mask = task.augment(image, tf.constant(mask), tf.constant([i, 7]))
        aug_image, aug_mask = aug_image.numpy()[..., 0], aug_mask.numpy()
        assert aug_mask.shape == mask.shape and aug_mask.dtype == np.int32
        # where the image is not blurred (a whole multiple of 20), it names the mask's class
        classes = aug_image / 20
        exact = np.abs(classes - np.round(classes)) < 0.01
        assert exact.mean() > 0.9
        assert np.mean(np.round(classes[exact]) == aug_mask[exact]) > 0.995
        assert set(np.unique(aug_mask)) <= set(range(11))
        moved += not np.array_equal(aug_mask, mask)
    assert moved >= 10  # it does change them


def test_a_small_unet_learns_to_segment_digit_scenes(segmenter):
    metrics_ = segmenter.metrics
    # untrained (the classifier at the log class priors): background everywhere, so a mean IoU of
    # iou_background / 11 ~ 0.09 with every digit at 0; measured after these 300 steps: 0.18,
    # five digits above 0.12 (the unet-digit-scenes recipe: 0.82 after 750 steps of a wider net)
    assert metrics_["mean_iou"] > 0.14, metrics_
    assert metrics_["iou_background"] > 0.9
    assert sum(metrics_[f"iou_{d}"] > 0.1 for d in range(10)) >= 3, metrics_


def test_the_tflite_report_has_the_mean_iou(segmenter):
    report = json.loads((segmenter.export_dir.parent / "tflite" / "report.json").read_text())
    assert report["saved_model_mean_iou"] == pytest.approx(segmenter.metrics["mean_iou"], abs=0.05)
    rows = {row["variant"]: row for row in report["variants"]}
    assert rows["float32"]["mean_iou"] == pytest.approx(report["saved_model_mean_iou"], abs=1e-4)
    assert rows["int8"]["mean_iou"] > report["saved_model_mean_iou"] - 0.05
    others = {row["signature"]: row["converts"] for row in report["other_signatures"]}
    assert others == {"segment_image_bytes": False}


@pytest.fixture(scope="module")
def served(segmenter, tmp_path_factory):
    log = tmp_path_factory.mktemp("segmentation-served") / "server.log"
    proc = ServerProcess(segmenter.export_dir.parent.parent, log_path=log)
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-6000:]


@pytest.fixture(scope="module")
def scenes(scenes_spec, segmenter):
    """Three held-out scenes (uint8), their PNG bytes, and the Keras model's classes per pixel."""
    source = data.open_source(scenes_spec)
    examples = list(source.load("test").take(3).as_numpy_iterator())
    images = np.stack([e["image"] for e in examples])
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    expected = np.argmax(segmenter.model(images.astype(np.float32)), axis=-1)
    return images, pngs, expected


def test_served_over_rest_as_tensors_and_as_image_bytes(served, scenes):
    images, pngs, expected = scenes
    url = f"{served.url}/v1/models/{MODEL}:predict"
    status, doc = http("POST", url, {"instances": images.tolist()})
    assert status == 200, doc
    segmentation = np.array([p["segmentation"] for p in doc["predictions"]])
    assert segmentation.shape == (3, 128, 128)
    assert np.mean(segmentation == expected) > 0.999
    probabilities = np.array([p["probabilities"] for p in doc["predictions"]])
    assert probabilities.shape == (3, 128, 128, 11)

    body = {"signature_name": "segment_image_bytes", "instances": [b64(p) for p in pngs]}
    status, doc = http("POST", url, body)
    assert status == 200, doc
    assert np.mean(np.array([p["segmentation"] for p in doc["predictions"]]) == expected) > 0.999

    # at the input's resolution: a 64x64 image gets a 64x64 map
    small = tf.image.resize(images[:1], [64, 64]).numpy().round().astype(np.uint8)
    status, doc = http("POST", url, {"instances": small.tolist()})
    assert status == 200 and np.array(doc["predictions"][0]["segmentation"]).shape == (64, 64)

    mixed = tf.io.encode_png(small[0]).numpy()
    body = {"signature_name": "segment_image_bytes", "instances": [b64(pngs[0]), b64(mixed)]}
    status, doc = http("POST", url, body)
    assert status == 400 and "share a size" in doc["error"], doc


def test_served_over_grpc(served, scenes):
    images, pngs, expected = scenes
    channel, predict, _ = grpc_stubs(served.grpc_target)
    with channel:
        response = predict.Predict(predict_request(MODEL, "serving_default", {"images": images}))
        segmentation = tf.make_ndarray(response.outputs["segmentation"])
        request = predict_request(MODEL, "segment_image_bytes", {"image_bytes": pngs})
        from_bytes = tf.make_ndarray(predict.Predict(request).outputs["segmentation"])
    assert segmentation.dtype == np.int32 and np.mean(segmentation == expected) > 0.999
    assert np.array_equal(from_bytes, segmentation)


@pytest.mark.parametrize(
    "name, narrow",
    [
        ("unet-oxford-pet", []),
        # the recipe's own backbone (resnet50), one block a stage and 8 filters
        ("deeplabv3_plus-oxford-pet", ['model.overrides.backbone_overrides={"width": 8, '
                                       '"blocks": [1, 1, 1, 1]}']),
    ],
)  # fmt: skip
def test_oxford_pet_recipes_train_on_mock_data(name, narrow, tmp_path, monkeypatch):
    """The GPU recipes' data path: tfds oxford_iiit_pet (mock photos of varying sizes, trimaps
    read as classes 0..2) resized to one size, a tiny model, two epochs and an export."""
    import tensorflow_datasets as tfds

    recipe = recipes.resolve(
        name,
        [
            "run.tiny=true",
            *narrow,
            "task.image_size=[32, 32]",
            "train.epochs=2",
            "train.batch_size=4",
            "train.eval_batch_size=4",
            'export.formats=["saved_model"]',
        ],
    )
    monkeypatch.setattr(data, "network_available", lambda: True)  # mock_data stands in
    with tfds.testing.mock_data(num_examples=8):
        result = train_and_export(recipe, tmp_path)
    assert result.steps == 4 and np.isfinite(result.metrics["loss"])
    assert 0.0 <= result.metrics["mean_iou"] <= 1.0
    assert {"iou_pet", "iou_background"} & set(result.metrics)
    loaded = tf.saved_model.load(str(result.export_dir))
    image = np.random.default_rng(0).integers(0, 255, (1, 50, 70, 3), dtype=np.uint8)
    out = loaded.signatures["serving_default"](images=tf.constant(image))
    assert out["segmentation"].shape == (1, 50, 70) and out["probabilities"].shape == (1, 50, 70, 3)


def test_mirrored_on_two_logical_cpus_matches_one_device(shared_data, tmp_path):
    """The segmentation steps under MirroredStrategy (2 replicas, the confusion matrix summed
    across them) train and score as on one device. Without batch normalization, whose batch
    statistics are per replica."""
    from tests.conftest import run_module

    out = tmp_path / "weights.npz"
    spec = f"digit_scenes:folder:{shared_data / 'mnist5k'}?count=64&seed=0"
    proc = run_module(
        "tests.training.workers", "mirrored-vs-one", out, shared_data / "mnist5k", tmp_path,
        MODEL, f"data.dataset={spec}", 'model.overrides={"batch_norm": false}',
        "train.batch_size=8", "train.eval_batch_size=16",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as saved:
        one = {k.split("/", 1)[1]: saved[k] for k in saved.files if k.startswith("one_device/")}
        two = {k.split("/", 1)[1]: saved[k] for k in saved.files if k.startswith("mirrored/")}
    assert one.keys() == two.keys() and "metric_mean_iou" in one
    for key in one:
        np.testing.assert_allclose(one[key], two[key], rtol=1e-4, atol=1e-5, err_msg=key)

"""Every `<model>-cifar10` recipe, in its model's tiny configuration, trains on tfds mock data
through the shared loop, exports a SavedModel that agrees with the trained model, and its int8
TFLite variant runs."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from ai_edge_litert.interpreter import Interpreter

import zoo
from tests.conftest import train_and_export
from training import data, distribute, recipes
from training.tasks import get_task

CIFAR_RECIPES = [name for name in recipes.list_recipes() if name.endswith("-cifar10")]


def train_tiny(name, root, *sets):
    recipe = recipes.resolve(
        name,
        [
            "run.tiny=true",
            "train.epochs=2",
            "train.batch_size=8",
            'export.tflite.variants=["int8"]',
            "train.log_every=2",
            *sets,
        ],
    )
    patch = pytest.MonkeyPatch()
    patch.setattr(data, "network_available", lambda: True)  # mock_data stands in for cifar10
    try:
        with tfds.testing.mock_data(num_examples=24):
            return train_and_export(recipe, root)
    finally:
        patch.undo()


def test_every_image_classifier_has_a_cifar10_recipe():
    vision = {
        n
        for n in zoo.list_models()
        if zoo.get_spec(n).builder.__module__.startswith("zoo.vision.")
        and zoo.get_spec(n).task == "classification"
    }
    assert {name.removesuffix("-cifar10") for name in CIFAR_RECIPES} == vision - {"cnn"}
    recipe = recipes.resolve("resnet18-cifar10")
    assert recipe["task"]["augment"] == "crop_flip" and recipe["task"]["label_smoothing"] > 0
    assert recipe["optimizer"]["schedule"] in ("cosine", "onecycle")
    assert recipe["optimizer"]["weight_decay"] > 0 and recipe["run"]["mixed_precision"] == "auto"


@pytest.mark.parametrize("name", CIFAR_RECIPES)
def test_tiny_recipe_trains_exports_and_runs_int8(name, tmp_path):
    result = train_tiny(name, tmp_path)
    assert result.steps == 6  # 24 mock images / 8 per batch * 2 epochs
    assert np.isfinite(result.metrics["loss"])
    saved = json.loads((result.run_dir / "recipe.json").read_text())
    assert saved["name"] == name and saved["model"]["name"] == name.removesuffix("-cifar10")
    # the second epoch moved the weights: the epoch-1 checkpoint differs from the final model
    at_epoch_1 = zoo.build(
        saved["model"]["name"], tiny=True, input_shape=(32, 32, 3), num_classes=10,
        **saved["model"]["overrides"],
    )  # fmt: skip
    checkpoint = tf.train.Checkpoint(model=at_epoch_1)
    checkpoint.restore(
        str(result.run_dir / "checkpoints" / "ckpt-3")
    ).assert_existing_objects_matched()
    pairs = zip(at_epoch_1.trainable_weights, result.model.trainable_weights)
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in pairs)

    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    loaded = tf.saved_model.load(str(result.export_dir))
    served = loaded.signatures["serving_default"](images=tf.constant(x))["probabilities"]
    np.testing.assert_allclose(served.numpy(), result.model(x).numpy(), rtol=1e-4, atol=1e-5)

    out = result.export_dir.parent / "tflite"
    report = json.loads((out / "report.json").read_text())
    assert [row["variant"] for row in report["variants"]] == ["int8"]
    assert "error" not in report["variants"][0], report["variants"][0]
    interpreter = Interpreter(model_path=str(out / "int8.tflite"))
    interpreter.allocate_tensors()
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.int8 and outp["dtype"] == np.int8
    scale, zero = inp["quantization"]
    interpreter.set_tensor(inp["index"], np.round(x[:1] / scale + zero).astype(np.int8))
    interpreter.invoke()
    scale, zero = outp["quantization"]
    probs = (interpreter.get_tensor(outp["index"]).astype(np.float32) - zero) * scale
    assert probs.shape == (1, 10) and abs(probs.sum() - 1) < 0.05


def test_mixed_precision_run_keeps_float32_outputs_and_variables(tmp_path):
    result = train_tiny("resnet18-cifar10", tmp_path, "run.mixed_precision=bfloat16")
    assert np.isfinite(result.metrics["loss"])
    assert result.model.get_layer("conv1_conv").compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in result.model.trainable_variables)
    loaded = tf.saved_model.load(str(result.export_dir))
    x = tf.zeros((1, 32, 32, 3))
    assert loaded.signatures["serving_default"](images=x)["probabilities"].dtype == tf.float32


def test_auto_mixed_precision_is_off_on_cpu():
    assert not tf.config.list_physical_devices("GPU")
    assert distribute.mixed_precision("auto") is None
    assert distribute.mixed_precision("float32") is None
    assert distribute.mixed_precision("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="unknown mixed precision 'half'"):
        distribute.mixed_precision("half")


def test_crop_flip_augmentation_shifts_and_flips_deterministically():
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }
    )
    source = data.Source("fake", features, ["train"], lambda split: None)
    image = np.arange(1, 28 * 28 + 1, dtype=np.float32).reshape(28, 28, 1)
    pad = 3  # max(2, 28 // 8)

    def shifts(x):  # every pad-and-crop of x
        padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
        return [
            padded[i : i + 28, j : j + 28] for i in range(2 * pad + 1) for j in range(2 * pad + 1)
        ]

    def is_one_of(x, candidates):
        return any(np.array_equal(x, c) for c in candidates)

    Classification = get_task("classification")
    assert Classification({"augment": "none"}, source).augment is None
    crop = Classification({"augment": "crop"}, source).augment
    crop_flip = Classification({"augment": "crop_flip"}, source).augment
    outputs = []
    for k in range(16):
        seed = tf.constant([0, k], tf.int64)
        out, label = crop_flip(tf.constant(image), 7, seed=seed)
        again, _ = crop_flip(tf.constant(image), 7, seed=seed)
        assert label == 7 and np.array_equal(out, again)  # the seed alone decides
        outputs.append(out.numpy())
        cropped, _ = crop(tf.constant(image), 7, seed=seed)
        assert is_one_of(cropped.numpy(), shifts(image))  # never flipped
    flipped = [is_one_of(o, shifts(image[:, ::-1])) for o in outputs]
    plain = [is_one_of(o, shifts(image)) for o in outputs]
    assert all(f or p for f, p in zip(flipped, plain)) and any(flipped) and any(plain)
    assert len({o.tobytes() for o in outputs}) > 4  # the crops vary with the seed

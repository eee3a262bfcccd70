"""Quantization-aware training (training/extensions/qat.py) on real digits: off by default, fake
quantization only from its start, int8 grids for kernels and tensors with gradients passing
straight through, its state kept across --resume, a plain model.keras, and int8 TFLite of it."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import zoo
from serving import exporters
from training import extensions, loop, recipes
from training.extensions.qat import FakeQuantized, QuantizationAwareTraining

QAT = QuantizationAwareTraining


def digits(shared_data, n=16):
    files = sorted((shared_data / "mnist5k" / "test").glob("*/*.png"))[:: 1000 // n][:n]
    images = [tf.io.decode_png(f.read_bytes(), channels=1).numpy() for f in files]
    return np.stack(images).astype("float32")


def on_grid(values, levels):
    """Whether `values` lie on one evenly spaced grid of at most `levels` points."""
    points = np.unique(values)
    if len(points) < 2:
        return True
    step = np.min(np.diff(points))
    offsets = (points - points[0]) / step
    return len(points) <= levels and np.allclose(offsets, np.round(offsets), atol=1e-2)


def logits_on_grid(model, probabilities):
    """Whether the logits behind softmax `probabilities` (a QAT copy's) lie on the 256-level grid
    of the classifier's output quantizer: their differences are whole steps."""
    quantizer = model.get_layer("predictions_qat").output_quantizer
    step = (float(quantizer.range_max.numpy()) - float(quantizer.range_min.numpy())) / 255
    logs = np.log(np.asarray(probabilities, np.float64))
    steps = (logs - logs[:, :1]) / step
    return np.allclose(steps, np.round(steps), atol=0.02)


def test_off_by_default_and_started_by_fraction_or_step():
    recipe = recipes.resolve("cnn", [])
    assert recipe["qat"]["start"] is None
    assert not any(e.section == "qat" for e in extensions.active(recipe, 100))
    assert QAT({**QAT.defaults, "start": 0.75}, 1240).start == 930
    assert QAT({**QAT.defaults, "start_step": 10}, 1240).start == 10
    with pytest.raises(ValueError, match="fraction"):
        QAT({**QAT.defaults, "start": 1.5}, 100)
    assert recipes.resolve("resnet18-cifar10", ["qat.start=0.8"])["qat"]["start"] == 0.8


def test_fake_quantization_only_once_started(shared_data):
    keras.utils.set_random_seed(0)
    model = zoo.build("cnn", tiny=True, batch_norm=True, convs_per_stage=2)
    qat = QAT({**QAT.defaults, "start_step": 5}, 10)
    wrapped = qat.wrap(model)
    assert qat.unwrap(wrapped) is model
    x = digits(shared_data)
    wrapped(x, training=True)  # the ranges follow the batches before the start too
    qat.after_step(wrapped, tf.constant(4, tf.int64))
    np.testing.assert_array_equal(wrapped(x, training=False), model(x, training=False))

    qat.after_step(wrapped, tf.constant(5, tf.int64))
    outputs = np.asarray(wrapped(x, training=False))
    difference = np.abs(outputs - model(x, training=False))
    assert 0 < difference.max() < 0.05  # 8-bit noise
    assert logits_on_grid(wrapped, outputs)  # the logits before the softmax: 256 levels
    values = np.random.default_rng(0).normal(size=1000).astype("float32")
    quantizer = wrapped.get_layer("conv1_2_qat").input_quantizer
    assert on_grid(quantizer(values), 256) and not on_grid(values, 256)  # inputs: 256 levels
    for wrapper in (layer for layer in wrapped.layers if isinstance(layer, FakeQuantized)):
        kernel = np.asarray(wrapper.quantized_kernel())
        plain = np.asarray(wrapper.layer.kernel)
        for channel in range(kernel.shape[-1]):  # per output channel, symmetric, 255 levels
            scale = np.max(np.abs(plain[..., channel])) / 127
            steps = kernel[..., channel] / scale
            np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
            np.testing.assert_allclose(kernel[..., channel], plain[..., channel], atol=scale / 2)
    # the gradient passes straight through the rounding
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(wrapped(x, training=True) * tf.one_hot(np.arange(16) % 10, 10))
    gradients = tape.gradient(loss, model.get_layer("conv1_1").kernel)
    assert gradients is not None and np.abs(gradients.numpy()).sum() > 0


@pytest.fixture(scope="module")
def qat_runs(shared_data, tmp_path_factory):
    """A tiny cnn to step 15 (quantization starts at 20), then resumed to step 30."""
    root = tmp_path_factory.mktemp("qat")
    sets = [
        f"data.dataset=folder:{shared_data / 'mnist5k'}",
        "run.tiny=true",
        "train.batch_size=32",
        "train.max_steps=15",
        "train.checkpoint_every=15",
        "qat.start_step=20",
    ]
    first = loop.train(recipes.resolve("cnn", sets), logdir=root, verbose=False)
    x = np.load(first.run_dir / "calibration.npz")["x_test"][:200]
    before = {
        "active": bool(tf.train.load_variable(str(first.run_dir / "checkpoints"), _flag(first))),
        "trained": np.asarray(first.model(x, training=False)),
        "saved": _saved_outputs(first.run_dir, x),
    }
    resumed = loop.train(
        recipes.resolve("cnn", ["train.max_steps=30"], base=recipes.resolve("cnn", sets)),
        logdir=root,
        resume_dir=first.run_dir,
        verbose=False,
    )
    return before, resumed, x


def _flag(run):
    names = [n for n, _ in tf.train.list_variables(str(run.run_dir / "checkpoints"))]
    (flag,) = [n for n in names if n.startswith("extension_qat/")]
    assert any("input_quant" in n for n in names)  # the ranges are checkpointed too
    return flag


def _saved_outputs(run_dir, x):
    saved = keras.saving.load_model(run_dir / "model.keras", compile=False)
    return np.asarray(saved(x, training=False))


def test_the_loop_quantizes_from_the_start_step_across_a_resume(qat_runs):
    before, resumed, x = qat_runs
    assert not before["active"]  # step 15 < 20: the trained model is the plain one
    np.testing.assert_allclose(before["trained"], before["saved"], atol=1e-6)
    assert resumed.steps == 30
    trained = np.asarray(resumed.model(x, training=False))
    assert logits_on_grid(resumed.model, trained)
    train = EventAccumulator(str(resumed.run_dir / "train"), size_guidance={"tensors": 0})
    train.Reload()
    active = [float(tf.make_ndarray(e.tensor_proto)) for e in train.Tensors("qat/active")]
    assert active == [0.0, 1.0]


def test_model_keras_is_the_plain_model_and_converts_to_int8(qat_runs, tmp_path):
    _, resumed, x = qat_runs
    saved = keras.saving.load_model(resumed.run_dir / "model.keras", compile=False)
    plain = zoo.build("cnn", tiny=True, batch_norm=True, convs_per_stage=2)
    assert [type(layer) for layer in saved.layers] == [type(layer) for layer in plain.layers]
    quantized = np.asarray(resumed.model(x, training=False))
    difference = np.abs(quantized - np.asarray(saved(x, training=False)))
    assert 0 < difference.max() < 0.05  # the same weights, without the fake quantization
    overrides = {"tflite": {"variants": ["int8"]}}
    written = exporters.export_run(
        resumed.run_dir, tmp_path, ["saved_model", "tflite"], overrides, say=lambda *_: None
    )
    (row,) = json.loads(pathlib.Path(written["tflite"]).read_text())["variants"]
    assert "error" not in row and row["max_abs_diff"] < 0.05, row

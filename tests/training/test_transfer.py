"""Transfer learning on the real digits: class subsets and a few labels a class, starting a run
from another's weights by layer name (with its report), freezing and unfreezing, and
keras.applications weights files loading into the zoo's models with the same outputs."""

import collections
import json

import h5py
import keras
import numpy as np
import pytest

from tests.conftest import run_module
from tests.training.conftest import digits_recipe

# the small plain cnn (no batch normalization: its statistics would need more steps than these)
FEW = ["data.classes=[5,6,7,8,9]", "data.per_class=20", "train.batch_size=20"]


def _train(recipe, logdir):
    from training import loop

    return loop.train(recipe, logdir=logdir, verbose=False)


def _weights(model):
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


@pytest.fixture(scope="module")
def pretrained(shared_data, tmp_path_factory):
    """The small cnn trained on the digits 0-4 only (150 steps)."""
    recipe = digits_recipe(shared_data, "data.classes=[0,1,2,3,4]", "train.max_steps=150")
    return _train(recipe, tmp_path_factory.mktemp("digits0to4"))


def test_classes_and_per_class_pick_the_first_examples_of_each_class(shared_data):
    from training import data

    source = data.open_source(f"folder:{shared_data / 'mnist5k'}")
    few = data.subset(source, [7, 3], per_class=5, split="train")
    assert few.class_names == ["7", "3"]
    train = list(few.load("train").as_numpy_iterator())
    assert collections.Counter(int(e["label"]) for e in train) == {0: 5, 1: 5}
    # the first five 7s of the split, in its order
    sevens = [e["image"] for e in source.load("train").as_numpy_iterator() if e["label"] == 7]
    np.testing.assert_array_equal([e["image"] for e in train if e["label"] == 0], sevens[:5])
    test_labels = [int(e["label"]) for e in few.load("test").as_numpy_iterator()]
    assert len(test_labels) > 150 and set(test_labels) == {0, 1}  # the test split whole
    with pytest.raises(data.DataError, match="0..9"):
        data.subset(source, [3, 10])


def test_init_from_a_run_loads_by_name_and_reports(pretrained, shared_data, tmp_path):
    """A frozen backbone from the 0-4 run and a new head for 5-9: the convs stay the loaded ones,
    the excluded head trains, and the report says so."""
    recipe = digits_recipe(
        shared_data,
        *FEW,
        f"model.init_from={pretrained.run_dir}",
        'model.init_exclude=["predictions"]',
        "train.freeze=backbone",
        "train.max_steps=15",
    )
    result = _train(recipe, tmp_path)
    report = json.loads((result.run_dir / "init_report.json").read_text())
    assert set(report["loaded"]) == {"conv1", "conv2"} and report["excluded"] == ["predictions"]
    before, after = _weights(pretrained.model), _weights(result.model)
    for name in ("conv1", "conv2"):  # frozen the whole run
        for a, b in zip(before[name], after[name]):
            np.testing.assert_array_equal(a, b)
    assert after["predictions"][0].shape == before["predictions"][0].shape  # 5 classes both
    assert not np.allclose(after["predictions"][0], before["predictions"][0])


def test_a_head_of_another_shape_is_skipped_and_unfreezing_trains_the_backbone(
    pretrained, shared_data, tmp_path
):
    recipe = digits_recipe(
        shared_data,
        "data.per_class=10",  # all ten classes: a 10-way head where the file has 5
        f"model.init_from={pretrained.run_dir / 'model.keras'}",
        "train.freeze=backbone",
        "train.freeze_epochs=1",
        "train.unfreeze_lr_scale=0.1",
        "train.batch_size=20",
        "train.epochs=2",
    )
    result = _train(recipe, tmp_path)
    report = json.loads((result.run_dir / "init_report.json").read_text())
    assert "5 in the file" in report["skipped"]["predictions"]
    before, after = _weights(pretrained.model), _weights(result.model)
    assert not np.allclose(before["conv1"][0], after["conv1"][0])  # trained after epoch 1
    assert all(layer.trainable for layer in result.model.layers)


def test_the_learning_rate_restarts_scaled_when_the_backbone_unfreezes():
    from training import optimizers

    config = {"name": "adam", "lr": 1e-3, "schedule": "cosine"}
    optimizer = optimizers.build(config, total_steps=100, restart=(20, 0.1))
    at = {}
    for step in (0, 10, 19, 20, 60, 99):
        optimizer.iterations.assign(step)
        at[step] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    assert at[0] == pytest.approx(1e-3) and at[10] == pytest.approx(5e-4, rel=1e-3)
    assert at[20] == pytest.approx(1e-4) and at[60] == pytest.approx(5e-5, rel=1e-3)
    assert at[19] < at[20] and at[99] < at[60]  # a cosine to 0, then again from lr / 10
    schedule = optimizers.Restarted(1e-3, optimizers.schedule(config, 80), 20, 0.1)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert float(restored(60)) == pytest.approx(at[60], rel=1e-5)


def test_bad_transfer_settings_exit_2_before_anything_is_written(shared_data, tmp_path):
    dataset = f"data.dataset=folder:{shared_data / 'mnist5k'}"
    for sets, message in [
        (["model.init_from=nowhere/model.keras"], "does not exist"),
        (["train.freeze=backbone"], "model.init_from"),
        (["data.classes=[3,12]"], "data.classes"),
    ]:
        args = ["training", "train", "cnn-classic", "--set", dataset, "--logdir", tmp_path]
        for s in sets:
            args += ["--set", s]
        done = run_module(*args, "--no-export", timeout=300)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
    assert not any(tmp_path.iterdir())


def _randomized(model, rng):
    """Every weight random (BN variances positive), so nothing matches by accident."""
    for layer in model.layers:
        values = []
        for variable in layer.weights:
            shape = tuple(variable.shape)
            if "variance" in variable.path or "gamma" in variable.path:
                values.append(rng.uniform(0.5, 2.0, shape))
            else:
                fan_in = np.prod(shape[:-1]) if len(shape) > 1 else 100.0
                values.append(rng.normal(size=shape) / np.sqrt(fan_in))
        if values:
            layer.set_weights([v.astype("float32") for v in values])


def _save_like_keras_applications(model, path):
    """The layout of keras.applications' published weights files (layer_names, weight_names)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{v.name}:0" for v in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)


@pytest.mark.parametrize(
    "name, application, module, overrides",
    [
        ("resnet50", "ResNet50", "resnet", {"version": "1"}),
        ("vgg16", "VGG16", "vgg16", {}),
    ],
)
def test_keras_applications_weights_load_into_the_zoo_model_with_equal_outputs(
    name, application, module, overrides, tmp_path
):
    import zoo
    from training import transfer

    rng = np.random.default_rng(0)
    reference = getattr(keras.applications, application)(
        weights=None, include_top=False, input_shape=(64, 64, 3)
    )
    _randomized(reference, rng)
    path = tmp_path / f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    _save_like_keras_applications(reference, path)

    model = zoo.build(
        name, include_top=False, input_shape=(64, 64, 3), preprocessing="caffe", **overrides
    )
    report = transfer.init_from(model, path)
    assert not report.skipped and not report.new
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    preprocess = getattr(keras.applications, module).preprocess_input
    expected = np.asarray(reference(preprocess(images.copy()), training=False))
    got = np.asarray(model(images, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())


def test_a_classifier_initialises_the_backbone_nested_in_a_captioner(tmp_path):
    import zoo
    from training import transfer

    tiny = zoo.get_spec("caption_transformer").tiny
    classifier = zoo.build(
        tiny["backbone"],
        input_shape=tiny["input_shape"],
        num_classes=10,
        **tiny["backbone_overrides"],
    )
    _randomized(classifier, np.random.default_rng(1))
    classifier.save(tmp_path / "model.keras")
    captioner = zoo.build("caption_transformer", **tiny)
    report = transfer.init_from(captioner, tmp_path / "model.keras")
    assert "conv1_conv" in report.loaded and "feature_projection" in report.new
    assert "predictions" in report.unused
    trunk_layers = {layer.name: layer for layer in transfer._all_layers(captioner)}
    for name in report.loaded:
        for got, want in zip(
            trunk_layers[name].get_weights(), classifier.get_layer(name).get_weights()
        ):
            np.testing.assert_array_equal(got, want)
    frozen = transfer.frozen_layers(captioner, "backbone", report)
    assert sorted(layer.name for layer in frozen) == sorted(report.loaded)

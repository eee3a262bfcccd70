"""Magnitude pruning (training/extensions/prune.py) on real digits: the schedule, the sparsity the
kernels reach, masks kept across --resume, 2:4 structure, and plain zeros in the export."""

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from training import extensions, loop, recipes
from training.extensions.prune import Prune


def kernels(model):
    return {
        layer.name: np.asarray(layer.kernel)
        for layer in model.layers
        if getattr(layer, "kernel", None) is not None
    }


def test_polynomial_schedule_as_tfmot_defines_it():
    config = {**Prune.defaults, "sparsity": 0.8, "initial_sparsity": 0.2}
    prune = Prune({**config, "begin_step": 100, "end_step": 300, "power": 3}, 1000)
    at = {step: float(prune.target(step)) for step in (0, 100, 200, 300, 900)}
    assert at[0] == at[100] == pytest.approx(0.2)
    assert at[200] == pytest.approx(0.8 + (0.2 - 0.8) * 0.5**3)
    assert at[300] == at[900] == pytest.approx(0.8)
    assert Prune({**Prune.defaults, "sparsity": 0.5}, 1000).end == 700  # 70% of the run
    with pytest.raises(ValueError, match="end_step"):
        Prune({**config, "begin_step": 50, "end_step": 10}, 1000)


def test_two_of_four_keeps_the_two_largest_in_each_group():
    prune = Prune({**Prune.defaults, "structure": "2:4"}, 100)
    weights = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 8, 5)), tf.float32)
    mask = prune._mask(weights, prune.target(1)).numpy()
    groups = np.moveaxis(mask, -2, -1).reshape(-1, 4)
    assert (groups.sum(axis=1) == 2).all()
    magnitude = np.moveaxis(np.abs(weights.numpy()), -2, -1).reshape(-1, 4)
    kept = np.sort(np.where(groups > 0, magnitude, np.inf), axis=1)[:, 0]
    dropped = np.sort(np.where(groups > 0, -np.inf, magnitude), axis=1)[:, -1]
    assert (kept >= dropped).all()


@pytest.fixture(scope="module")
def pruned(shared_data, tmp_path_factory):
    """A tiny cnn pruned to 80% by step 20 of 30, then resumed to step 50."""
    root = tmp_path_factory.mktemp("prune")
    sets = [
        f"data.dataset=folder:{shared_data / 'mnist5k'}",
        "run.tiny=true",
        "train.batch_size=32",
        "train.max_steps=30",
        "train.checkpoint_every=10",
        "prune.sparsity=0.8",
        "prune.end_step=20",
        "prune.frequency=5",
    ]
    first = loop.train(recipes.resolve("cnn", sets), logdir=root, verbose=False)
    before = kernels(first.model)
    resumed = loop.train(
        recipes.resolve("cnn", ["train.max_steps=50"], base=recipes.resolve("cnn", sets)),
        logdir=root,
        resume_dir=first.run_dir,
        verbose=False,
    )
    return before, resumed


def test_kernels_reach_the_sparsity_and_keep_it_after_resume(pruned):
    before, resumed = pruned
    assert resumed.steps == 50
    after = kernels(resumed.model)
    for name, kernel in before.items():
        assert np.mean(kernel == 0) == pytest.approx(0.8, abs=0.02), name
        # the masks came back from the checkpoint: 20 more steps of training regrew nothing
        assert np.array_equal(after[name] == 0, kernel == 0), name
        assert not np.allclose(after[name], kernel), f"{name} did not train after the resume"
    train = EventAccumulator(str(resumed.run_dir / "train"), size_guidance={"tensors": 0})
    train.Reload()
    sparsity = [float(tf.make_ndarray(e.tensor_proto)) for e in train.Tensors("prune/sparsity")]
    assert sparsity[-1] == pytest.approx(0.8, abs=0.02)


def test_the_saved_model_is_plain_layers_with_zeros(pruned):
    import keras

    _, resumed = pruned
    saved = keras.saving.load_model(resumed.run_dir / "model.keras", compile=False)
    assert [type(layer) for layer in saved.layers] == [type(x) for x in resumed.model.layers]
    for name, kernel in kernels(saved).items():
        assert np.mean(kernel == 0) == pytest.approx(0.8, abs=0.02), name


def test_every_recipe_takes_the_prune_section():
    assert "prune" in extensions.EXTENSIONS
    recipe = recipes.resolve("resnet18-cifar10", ["prune.sparsity=0.5", 'prune.layers=["conv"]'])
    assert recipe["prune"]["sparsity"] == 0.5

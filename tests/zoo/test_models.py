"""Every registered model, through the same checks (KerasHub's test_case style): it builds from its
spec, its tiny variant runs forward on random inputs, round-trips its config and a .keras file,
and one gradient step changes its weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo

MODELS = zoo.list_models()


def random_inputs(model, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    inputs = {}
    for tensor in model.inputs:
        shape = [batch] + [d if d is not None else 8 for d in tensor.shape[1:]]
        if "int" in str(tensor.dtype):
            inputs[tensor.name] = rng.integers(0, 2, shape).astype(str(tensor.dtype))
        else:
            inputs[tensor.name] = rng.uniform(0, 255, shape).astype("float32")
    return inputs if len(inputs) > 1 else next(iter(inputs.values()))


def float_outputs(outputs):
    return [o for o in tf.nest.flatten(outputs) if o.dtype.is_floating]


def test_registry_lists_models_and_rejects_bogus_names():
    assert "cnn" in MODELS
    with pytest.raises(zoo.UnknownModelError, match="unknown model 'no_such_net'"):
        zoo.build("no_such_net")
    with pytest.raises(ValueError, match="has no argument 'bogus'"):
        zoo.build("cnn", bogus=1)


@pytest.mark.parametrize("name", MODELS)
def test_spec_is_complete(name):
    spec = zoo.get_spec(name)
    assert spec.task and spec.citation and spec.tiny, f"{name}: spec needs task, citation, tiny"
    assert set(spec.tiny) <= set(spec.arguments())


@pytest.mark.parametrize("name", MODELS)
def test_tiny_model_runs_round_trips_and_trains_one_step(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = zoo.build(name, tiny=True)
    assert all(layer.name for layer in model.layers)
    x = random_inputs(model)
    y = model(x, training=False)
    assert float_outputs(y) and all(np.isfinite(o.numpy()).all() for o in float_outputs(y))

    # config round trip: the same architecture, weights loaded by name
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    for a, b in zip(float_outputs(y), float_outputs(clone(x, training=False)), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)

    # .keras save/load
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    for a, b in zip(float_outputs(y), float_outputs(loaded(x, training=False)), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)

    # one gradient step on a task-agnostic loss moves the weights
    before = [v.numpy().copy() for v in model.trainable_variables]
    optimizer = keras.optimizers.SGD(0.01)
    with tf.GradientTape() as tape:
        loss = tf.add_n(
            [tf.reduce_mean(tf.square(o)) for o in float_outputs(model(x, training=True))]
        )
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(
        [(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None]
    )
    assert np.isfinite(loss.numpy())
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert any(changed), f"{name}: no weight moved after one step"

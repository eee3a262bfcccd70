"""The zoo cnn: its defaults are keras-io's mnist_convnet exactly; `batch_norm` and
`convs_per_stage` (the `cnn` recipe) add conv-BN-ReLU stages with hierarchical names."""

import keras
import numpy as np

import zoo


def layer_table(model):
    return [(layer.name, type(layer).__name__) for layer in model.layers]


def test_defaults_are_keras_io_mnist_convnet():
    model = zoo.build("cnn")
    assert layer_table(model) == [
        ("images", "InputLayer"),
        ("rescale", "Rescaling"),
        ("conv1", "Conv2D"),
        ("pool1", "MaxPooling2D"),
        ("conv2", "Conv2D"),
        ("pool2", "MaxPooling2D"),
        ("flatten", "Flatten"),
        ("dropout", "Dropout"),
        ("predictions", "Dense"),
    ]
    assert model.count_params() == 34_826  # keras-io mnist_convnet's model.summary()
    assert model.get_layer("conv1").use_bias and model.get_layer("conv2").kernel_size == (3, 3)
    assert model.get_layer("dropout").rate == 0.5


def test_batch_norm_two_convs_per_stage():
    model = zoo.build("cnn", batch_norm=True, convs_per_stage=2)
    names = [layer.name for layer in model.layers]
    assert names[2:7] == ["conv1_1", "conv1_1_bn", "conv1_1_relu", "conv1_2", "conv1_2_bn"]
    assert "pool1" in names and "conv2_2_relu" in names and "pool2" in names
    for conv in ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]:
        assert not model.get_layer(conv).use_bias  # BN's beta is the bias
    # 28 -> 26 -> 24 -> pool 12 -> 10 -> 8 -> pool 4: 4 x 4 x 64 features
    assert model.get_layer("flatten").output.shape[1:] == (1024,)
    convs = 9 * 32 + 9 * 32 * 32 + 9 * 32 * 64 + 9 * 64 * 64
    bn = 4 * (32 + 32 + 64 + 64)
    assert model.count_params() == convs + bn + 1024 * 10 + 10


def test_tiny_with_batch_norm_stays_tiny_and_raw_pixels_go_in():
    model = zoo.build("cnn", tiny=True, batch_norm=True, convs_per_stage=2)
    assert model.count_params() < 3_000
    x = np.random.default_rng(0).uniform(0, 255, (2, 28, 28, 1)).astype("float32")
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (2, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)

"""Self-supervised pretraining (training/tasks/ssl.py) on the real shared digits:

- two short SimCLR epochs (20 steps on 1,000 unlabelled digits) lift the linear probe on 40
  labels and the k-NN accuracy above the same encoder at its random initialization, and the loss
  falls;
- the probe's 40 images are data.per_class's: the first 4 files of each class folder;
- the run exports the encoder: serving_default returns the Keras model's embeddings [N,D], and
  the TFLite report scores them by k-NN;
- SimSiam trains (finite loss, projections not collapsed) and is scored the same way;
- SwAV's Sinkhorn codes balance the prototypes, and one short epoch lifts both scores;
- validation batches mix the classes of a split stored class by class;
- SimCLR under MirroredStrategy on two logical CPUs takes its negatives from both replicas, and
  SwAV its Sinkhorn sums over both: loss and updated weights equal one device's on the same
  global batch.

The mirrored check runs this file as a script in a fresh interpreter (logical devices must be set
up before TensorFlow starts).
"""

import json
import pathlib
import sys

import numpy as np

from tests.conftest import run_module, train_and_export

# a small plain cnn encoder (16 and 32 filters, no batch normalization) and a small head
SMALL = (
    'model.overrides={"backbone_overrides": {"filters": [16, 32], "dropout": 0.0}, '
    '"projection_dims": [64, 32], "batch_norm": false}'
)


def recipe(name, shared_data, *sets):
    from training import recipes

    return recipes.resolve(
        name,
        [
            f"data.dataset=folder:{shared_data / 'mnist5k'}",
            SMALL,
            "data.per_class=100",  # 1,000 training digits: 10 steps of 100
            "data.shuffle_buffer=1000",
            "train.batch_size=100",
            "train.epochs=1",
            "train.log_every=5",
            "optimizer.lr=0.003",
            "optimizer.warmup_steps=0",
            *sets,
        ],
    )


def random_encoder_scores(r):
    """The probe and k-NN scores of the run's encoder as the loop initializes it (same seed)."""
    import keras

    import zoo
    from training import data
    from training.tasks import get_task

    d = r["data"]
    source = data.subset(data.open_source(d["dataset"]), None, d["per_class"], d["train_split"])
    task = get_task(r["task"]["name"])(r["task"], source)
    keras.utils.set_random_seed(int(r["train"]["seed"]))
    model = zoo.build(r["model"]["name"], **task.model_overrides(), **r["model"]["overrides"])
    pairs = list(source.load(d["validation_split"]).as_numpy_iterator())
    images = np.stack([p["image"] for p in pairs]).astype(np.float32)
    labels = np.array([p["label"] for p in pairs])
    return task, task.scores(model, task.embed(model, images), labels)


def event_scalars(directory, tag):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory))
    acc.Reload()
    return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def test_a_short_simclr_run_beats_the_random_encoder_and_exports_it(shared_data, tmp_path):
    r = recipe(
        "simclr-digits",
        shared_data,
        'export.formats=["saved_model", "tflite"]',
        'export.tflite.variants=["float32"]',
        "train.epochs=2",  # 20 steps: 10 lift the probe by under a point on some orders
        "train.log_every=10",
    )
    task, before = random_encoder_scores(r)
    run = train_and_export(r, tmp_path)
    after = run.metrics
    # the encoder learned from unlabelled views: both label-based scores rise
    assert after["probe_accuracy"] >= before["probe_accuracy"] + 0.01, (before, after)
    assert after["knn_accuracy"] > before["knn_accuracy"], (before, after)
    saved = json.loads((run.run_dir / "metrics.json").read_text())["validation"]
    assert saved["probe_accuracy"] == after["probe_accuracy"]

    # the loss falls over the epoch, and the scores are in TensorBoard
    losses = event_scalars(run.run_dir / "train", "batch_loss")
    assert [s for s, _ in losses] == [10, 20] and losses[-1][1] < losses[0][1], losses
    for tag in ("epoch_probe_accuracy", "epoch_knn_accuracy"):
        assert event_scalars(run.run_dir / "validation", tag), tag

    # the probe's labelled images: the first 4 of each class folder (data.per_class's rule)
    images, labels = task.labelled(4)
    assert np.array_equal(labels, np.repeat(np.arange(10), 4))
    import tensorflow as tf

    first_three = sorted((shared_data / "mnist5k" / "train" / "3").iterdir())[0]
    png = tf.io.decode_png(tf.io.read_file(str(first_three))).numpy()
    np.testing.assert_array_equal(images[12], png.astype(np.float32))

    # the export serves the encoder's embeddings
    import keras

    loaded = tf.saved_model.load(str(run.export_dir))
    x = images[:6]
    served = loaded.signatures["serving_default"](images=tf.constant(x))["embedding"].numpy()
    model = keras.saving.load_model(run.run_dir / "model.keras", compile=False)
    expected = model(x, training=False)["embedding"].numpy()
    assert served.shape == (6, 32 * 5 * 5) == expected.shape  # the flattened last stage
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)
    png_bytes = tf.constant([tf.io.encode_png(x[0].astype(np.uint8)).numpy()])
    by_bytes = loaded.signatures["embed_image_bytes"](image_bytes=png_bytes)["embedding"].numpy()
    np.testing.assert_allclose(by_bytes[0], expected[0], rtol=1e-4, atol=1e-4)
    report = json.loads(
        (tmp_path / "exports" / "simclr-digits" / "tflite" / "report.json").read_text()
    )
    row = report["variants"][0]
    assert report["task"] == "embedding" and row["variant"] == "float32"
    assert row["knn_accuracy"] == report["saved_model_knn_accuracy"] > 0.8, report


def test_simsiam_trains_without_collapse(shared_data, tmp_path):
    sets = [
        'model.overrides={"backbone_overrides": {"filters": [16, 32], "dropout": 0.0}, '
        '"projection_dims": [64, 64], "predictor_dims": [16, 64]}',
        "train.max_steps=5",
        "export.formats=[]",
    ]
    r = recipe("simsiam-digits", shared_data, *sets)
    from training import loop

    result = loop.train(r, logdir=tmp_path, verbose=False)
    metrics = result.metrics
    assert -1.0 <= metrics["loss"] < 0.0 and metrics["projection_std"] > 0.1, metrics
    assert 0.5 < metrics["probe_accuracy"] <= 1.0 and 0.5 < metrics["knn_accuracy"] <= 1.0


def test_swav_codes_balance_the_prototypes_and_one_epoch_beats_the_random_encoder(
    shared_data, tmp_path
):
    import tensorflow as tf

    from training.tasks.ssl import sinkhorn

    # Sinkhorn codes: each image's sums to one, each prototype gets an equal share of the batch,
    # and the codes follow the scores (the best-scoring prototype of a clear row keeps its image)
    rng = np.random.default_rng(0)
    scores = (0.5 * np.tanh(rng.normal(size=(64, 8)))).astype(np.float32)  # cosines
    scores[:, 0] += 0.5  # every image prefers prototype 0: equipartition must spread them
    codes = sinkhorn(tf.constant(scores), epsilon=0.05, iterations=50).numpy()
    np.testing.assert_allclose(codes.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(codes.sum(0), 64 / 8, rtol=0.02)
    assert (codes.argmax(1) == 0).mean() < 0.3 < (scores.argmax(1) == 0).mean()

    # a short SwAV run: the two views of a held-out digit fall in the same cluster more often
    # than under the random initialization (SwAV's first steps reshuffle the random features,
    # so the probe only passes the random encoder's later: 0.878 after 5 epochs of the recipe)
    r = recipe(
        "swav-digits",
        shared_data,
        'model.overrides={"backbone_overrides": {"filters": [16, 32], "dropout": 0.0}, '
        '"projection_dims": [64, 32], "prototypes": 10}',
        "train.epochs=8",
        "export.formats=[]",
    )
    task, _ = random_encoder_scores(r)
    import keras

    import zoo
    from training import loop

    keras.utils.set_random_seed(int(r["train"]["seed"]))
    untrained = zoo.build(r["model"]["name"], **task.model_overrides(), **r["model"]["overrides"])
    result = loop.train(r, logdir=tmp_path, verbose=False)
    trained = keras.saving.load_model(result.run_dir / "model.keras", compile=False)
    images, _ = task.labelled(10)  # 100 training digits, different views each time
    views = task._eval_views(tf.constant(images))
    agreement = [
        float(task.losses(m, *views, training=False)[1]["code_agreement"]) / len(images)
        for m in (untrained, trained)
    ]
    assert agreement[1] > agreement[0] + 0.05, agreement
    assert result.metrics["code_agreement"] > agreement[0] + 0.05, (agreement, result.metrics)


def test_views_are_deterministic_augmentations(shared_data):
    import tensorflow as tf

    from training import data
    from training.tasks.ssl import SimCLR

    task = SimCLR({"name": "simclr"}, data.open_source(f"folder:{shared_data / 'mnist5k'}"))
    image, _ = task.labelled(1)
    image = tf.constant(image[0])
    seed = tf.constant([3, 7], tf.int64)
    a1, a2 = task.augment(image, 0, seed)
    b1, b2 = task.augment(image, 0, seed)
    np.testing.assert_array_equal(a1.numpy(), b1.numpy())  # the same seed, the same views
    assert not np.allclose(a1.numpy(), a2.numpy())  # two different views of one image
    assert a1.shape == image.shape and 0 <= a1.numpy().min() and a1.numpy().max() <= 255


def test_validation_batches_mix_the_classes_of_a_split_stored_by_class(shared_data):
    """The folder's test split is read class by class; a batch of one class would leave NT-Xent
    without negatives and SwAV's Sinkhorn codes without classes to spread over."""
    from training import data
    from training.tasks.ssl import SwAV

    source = data.open_source(f"folder:{shared_data / 'mnist5k'}")
    stored = [int(ex["label"]) for ex in source.load("test").take(128).as_numpy_iterator()]
    assert len(set(stored)) <= 2  # the premise: stored by class (100 test digits each)
    task = SwAV({"name": "swav"}, source)
    first = [int(y) for _, y in task.inputs(source.load("test")).take(128).as_numpy_iterator()]
    assert len(set(first)) == 10
    again = [int(y) for _, y in task.inputs(source.load("test")).take(128).as_numpy_iterator()]
    assert first == again  # one fixed order, epoch after epoch


def test_embed_depth_serves_a_hidden_layer_of_the_projection_head():
    import keras
    import pytest

    import zoo

    model = zoo.build(
        "simclr", backbone_overrides={"filters": [4, 8]}, projection_dims=[16, 12, 8],
        batch_norm=False, embed_depth=2,
    )  # fmt: skip
    x = np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype(np.float32)
    hidden = keras.Model(model.inputs, model.get_layer("projection_relu2").output)
    np.testing.assert_allclose(model(x)["embedding"], hidden(x), rtol=1e-6)
    assert model.output["embedding"].shape[-1] == 12 and model.output["projection"].shape[-1] == 8
    with pytest.raises(ValueError, match="embed_depth=3"):
        zoo.build("simclr", backbone_overrides={"filters": [4, 8]}, projection_dims=[16, 12, 8],
                  embed_depth=3)  # fmt: skip


def test_simclr_and_swav_mirrored_on_two_cpus_use_the_global_batch():
    done = run_module("tests.training.test_ssl", "mirrored", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("simclr", "swav"):
        assert f"{name} mirrored matches one device" in done.stdout, done.stdout[-2000:]


# ---------------------------------------------------------------------------------------------
# the mirrored check, run as `python -m tests.training.test_ssl mirrored`


def _mirrored_check():
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    import zoo
    from training.tasks.ssl import nt_xent, swapped_prediction

    rng = np.random.default_rng(0)
    views = [rng.uniform(0, 255, (16, 28, 28, 1)).astype(np.float32) for _ in range(2)]
    # each loss on the two views' outputs: SimCLR's negatives and SwAV's Sinkhorn sums are
    # both over the global batch
    losses = {
        "simclr": ("projection", lambda a, b: nt_xent(a, b, temperature=0.5)[0]),
        "swav": ("scores", lambda a, b: swapped_prediction(a, b, 0.1, 0.05, 3)[0]),
    }

    def one_step(strategy, name):
        output, loss_fn = losses[name]
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = zoo.build(
                name, backbone_overrides={"filters": [4, 8]}, projection_dims=[16, 8],
                batch_norm=False,
            )  # fmt: skip
            optimizer = keras.optimizers.SGD(0.5)
            optimizer.build(model.trainable_variables)

        def replica(v1, v2):
            with tf.GradientTape() as tape:
                out = model(tf.concat([v1, v2], 0), training=True)[output]
                per_image = loss_fn(*tf.split(out, 2))
                loss = tf.reduce_sum(per_image) / 16.0
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return tf.reduce_sum(per_image)

        ds = tf.data.Dataset.from_tensors(tuple(views))
        batch = next(iter(strategy.experimental_distribute_dataset(ds)))
        total = tf.function(lambda b: strategy.run(replica, args=b))(batch)
        total = strategy.reduce("SUM", total, axis=None)
        return float(total), [v.numpy() for v in model.trainable_variables]

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) == 2, devices
    # one strategy of each kind for both: a second MirroredStrategy in one process would reuse
    # the first one's collective instance keys
    one_device = tf.distribute.OneDeviceStrategy(devices[0])
    mirrored = tf.distribute.MirroredStrategy(devices)
    for name in losses:
        one_loss, one_weights = one_step(one_device, name)
        two_loss, two_weights = one_step(mirrored, name)
        # with each replica's own 8 images only, SimCLR's loss would be far lower (7 negatives,
        # not 15) and SwAV's codes would balance the prototypes over 8 images, not 16
        np.testing.assert_allclose(two_loss, one_loss, rtol=1e-4)
        for a, b in zip(one_weights, two_weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        print(f"{name} mirrored matches one device: loss {two_loss:.5f} vs {one_loss:.5f}")


if __name__ == "__main__" and sys.argv[1:] == ["mirrored"]:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
    _mirrored_check()

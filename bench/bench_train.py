"""Training throughput: the zoo's distributed loop next to plain `keras.Model.fit`.

Same model, same tf.data pipeline (a folder data set of random PNGs, cached), same batch, same
optimizer, one device, in one process, alternating the two so machine noise hits both. Reports
steady-state images/s (first epoch excluded: tracing and the cache fill) and the ratio
loop / fit. Results: bench/results/train.json.

    python bench/bench_train.py [--models cnn,resnet18] [--batch 64] [--images 1024] [--epochs 3]
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import zoo  # noqa: E402
from training import data, loop, recipes  # noqa: E402

# model -> (image shape, overrides): small CPU-sized configurations
MODELS = {
    "cnn": ((28, 28, 1), {}),
    "resnet18": ((32, 32, 3), {"cifar_stem": True}),
    "mobilenet_v2": ((32, 32, 3), {"cifar_stem": True}),
}


def make_folder(root, shape, n, classes=10):
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / "train" / str(i % classes)
        d.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        (d / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    for c in range(classes):  # a small validation split
        d = root / "test" / str(c)
        d.mkdir(parents=True, exist_ok=True)
        (d / "0.png").write_bytes(
            tf.io.encode_png(rng.integers(0, 256, shape, dtype=np.uint8)).numpy()
        )


def recipe_for(name, folder, batch, epochs, overrides):
    sets = [
        f"model.name={name}",
        f"data.dataset=folder:{folder}",
        f"train.batch_size={batch}",
        f"train.epochs={epochs}",
        "train.log_every=5",
        "train.checkpoint_every=100000",
        "data.shuffle_buffer=0",
        "task.augment=none",
    ]
    recipe = recipes.resolve("cnn", sets)
    recipe["model"]["overrides"] = overrides
    return recipe


def zoo_loop(recipe, logdir):
    result = loop.train(recipe, logdir=logdir, export=False, verbose=False)
    acc = EventAccumulator(str(result.run_dir / "train"), size_guidance={"tensors": 0})
    acc.Reload()
    steps_per_epoch = result.steps // recipe["train"]["epochs"]
    rates = [
        float(tf.make_ndarray(e.tensor_proto))
        for e in acc.Tensors("examples_per_second")
        if e.step > steps_per_epoch  # steady state: after the first epoch
    ]
    return float(np.median(rates))


def keras_fit(recipe, name, overrides):
    source = data.open_source(recipe["data"]["dataset"])
    from training.tasks import get_task

    task = get_task("classification")(recipe["task"], source)
    ds = data.prepared(source, "train", task.inputs, cache=True)
    batch = recipe["train"]["batch_size"]
    batches = ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    keras.utils.set_random_seed(0)
    model = zoo.build(name, **{**task.model_overrides(), **overrides})
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times = []
    model.fit(batches, epochs=recipe["train"]["epochs"], verbose=0, callbacks=[Clock()])
    steps = data.count(batches)
    return float(np.median([steps * batch / t for t in times[1:]]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="bench/results/train.json")
    args = parser.parse_args(argv)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            shape, overrides = MODELS[name]
            folder = pathlib.Path(tmp, name)
            make_folder(folder, shape, args.images)
            recipe = recipe_for(name, folder, args.batch, args.epochs, overrides)
            fit_a = keras_fit(recipe, name, overrides)
            ours = zoo_loop(recipe, pathlib.Path(tmp, "runs"))
            fit_b = keras_fit(recipe, name, overrides)
            fit = (fit_a + fit_b) / 2
            rows.append(
                {
                    "model": name,
                    "batch": args.batch,
                    "image_shape": list(shape),
                    "zoo_loop_images_per_s": round(ours, 1),
                    "keras_fit_images_per_s": round(fit, 1),
                    "ratio_loop_over_fit": round(ours / fit, 3),
                }
            )
            print(
                f"{name:<14} loop {ours:8.1f} img/s  fit {fit:8.1f} img/s  ratio {ours / fit:.3f}",
                flush=True,
            )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"device": "cpu", "cores": os.cpu_count(), "results": rows}, indent=2) + "\n"
    )
    print(f"-> {out}")


if __name__ == "__main__":
    main()

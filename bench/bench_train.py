"""Training throughput: the zoo's distributed loop next to plain `keras.Model.fit`.

Same model, same tf.data pipeline (a folder data set of random PNGs, cached), same batch, same
optimizer, one device, in one process, alternating the two so machine noise hits both. Reports
steady-state images/s (first epoch excluded: tracing and the cache fill) and the ratio
loop / fit. Results: bench/results/train.json.

    python bench/bench_train.py [--models cnn,resnet18] [--batch 64] [--images 512] [--epochs 3]
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

# Every vision model in its `<model>-cifar10` recipe's configuration (cnn: 28x28x1 MNIST). The
# four heaviest run in their tiny configuration: at full width one of them takes many minutes on
# two CPU cores; their full-size figure is the GPU benchmark's (bench_gpu.py).
TINY_ON_CPU = {"resnet34", "resnet50", "inception_v3", "googlenet"}


def configuration(name):
    """(image shape, model overrides, tiny) for `name`."""
    if name == "cnn":
        return (28, 28, 1), {}, False
    recipe = f"{name}-cifar10"
    if recipe not in recipes.RECIPES:
        raise SystemExit(f"no {recipe} recipe: models are cnn or a vision model with one")
    return (32, 32, 3), dict(recipes.RECIPES[recipe]["model"]["overrides"]), name in TINY_ON_CPU


MODELS = ["cnn"] + [r.removesuffix("-cifar10") for r in recipes.list_recipes() if "-cifar10" in r]


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


def recipe_for(name, folder, batch, epochs, overrides, tiny):
    sets = [
        f"model.name={name}",
        f"data.dataset=folder:{folder}",
        f"train.batch_size={batch}",
        f"train.epochs={epochs}",
        "train.checkpoint_every=100000",
        "data.shuffle_buffer=0",
        "task.augment=none",
        f"run.tiny={json.dumps(tiny)}",
    ]
    recipe = recipes.resolve("cnn", sets)
    recipe["model"]["overrides"] = overrides
    return recipe


def zoo_loop(recipe, logdir):
    """Images over seconds across the logging windows after the first epoch, each window's
    seconds being its images over its logged examples_per_second (as fit's epochs, evaluation
    at the epoch ends is not counted)."""
    result = loop.train(recipe, logdir=logdir, verbose=False)
    acc = EventAccumulator(str(result.run_dir / "train"), size_guidance={"tensors": 0})
    acc.Reload()
    steps_per_epoch = result.steps // recipe["train"]["epochs"]
    batch = recipe["train"]["batch_size"]
    images = seconds = 0.0
    previous = 0
    for event in sorted(acc.Tensors("examples_per_second"), key=lambda e: e.step):
        if previous >= steps_per_epoch:  # steady state: after the first epoch
            n = (event.step - previous) * batch
            images += n
            seconds += n / float(tf.make_ndarray(event.tensor_proto))
        previous = event.step
    return images / seconds


def keras_fit(recipe, name, overrides, tiny):
    source = data.open_source(recipe["data"]["dataset"])
    from training.tasks import get_task

    task = get_task("classification")(recipe["task"], source)
    ds = data.prepared(source, "train", task.inputs, cache=True)
    batch = recipe["train"]["batch_size"]
    batches = ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    keras.utils.set_random_seed(0)
    model = zoo.build(name, tiny=tiny, **{**task.model_overrides(), **overrides})
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
    return steps * batch * len(times[1:]) / sum(times[1:])  # after the first epoch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="bench/results/train.json")
    args = parser.parse_args(argv)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            shape, overrides, tiny = configuration(name)
            folder = pathlib.Path(tmp, name)
            make_folder(folder, shape, args.images)
            recipe = recipe_for(name, folder, args.batch, args.epochs, overrides, tiny)
            fit_a = keras_fit(recipe, name, overrides, tiny)
            ours = zoo_loop(recipe, pathlib.Path(tmp, "runs"))
            fit_b = keras_fit(recipe, name, overrides, tiny)
            fit = (fit_a + fit_b) / 2
            rows.append(
                {
                    "model": name,
                    "configuration": "tiny" if tiny else "recipe",
                    "batch": args.batch,
                    "image_shape": list(shape),
                    "zoo_loop_images_per_s": round(ours, 1),
                    "keras_fit_images_per_s": round(fit, 1),
                    "ratio_loop_over_fit": round(ours / fit, 3),
                }
            )
            print(
                f"{name + (' (tiny)' if tiny else ''):<26} loop {ours:8.1f} img/s  "
                f"fit {fit:8.1f} img/s  ratio {ours / fit:.3f}",
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

"""Worker for the generative strategy test: `python -m tests.training.generative_workers OUT_NPZ
DATA_DIR LOGDIR RECIPE`.

Configures two logical CPUs before TensorFlow starts, then trains the recipe (tiny, a few steps,
the same global batch) under one_device and under mirrored, and saves both final weight sets as
`<strategy>/w<i>` in OUT_NPZ, with the weights the runs started from as `initial/w<i>`.

One recipe per process: a second MirroredStrategy in the same process training a different model
meets the collective instance keys of the first (TF 2.21 aborts with "Shape mismatch in the
collective instance 100"; seen with vae then gan).
"""

import sys

import numpy as np
import tensorflow as tf

STEPS = 4


def recipe(name, data_dir, strategy):
    from training import recipes

    return recipes.resolve(
        name,
        [
            f"data.dataset=folder:{data_dir}",
            f"run.strategy={strategy}",
            "run.tiny=true",
            "train.batch_size=32",
            f"train.max_steps={STEPS}",
            "train.log_every=1000",
            "train.eval_batch_size=500",
            "data.shuffle_buffer=256",
            "task.frechet_samples=0",
            "task.grid_size=4",
        ],
    )


def main():
    out, data_dir, logdir, name = sys.argv[1:]
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    import zoo
    from training import loop

    saved = {}
    for strategy in ("one_device", "mirrored"):
        result = loop.train(
            recipe(name, data_dir, strategy),
            logdir=f"{logdir}/{strategy}",
            verbose=False,
        )
        assert result.steps == STEPS, result.steps
        for i, w in enumerate(result.model.get_weights()):
            saved[f"{strategy}/w{i}"] = w
    first = recipe(name, data_dir, "one_device")
    keras.utils.set_random_seed(first["train"]["seed"])  # as the loop does before building
    initial = zoo.build(first["model"]["name"], tiny=True, input_shape=(28, 28, 1))
    for i, w in enumerate(initial.get_weights()):
        saved[f"initial/w{i}"] = w
    np.savez(out, **saved)


if __name__ == "__main__":
    main()

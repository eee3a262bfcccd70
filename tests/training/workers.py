"""Worker script for the strategy tests: `python -m tests.training.workers MODE OUT_NPZ ...`.

mirrored-vs-one: two logical CPUs; trains the same tiny recipe under one_device and under
mirrored (same global batch) and saves both final weight sets and validation metrics. Optional
arguments after the four: a recipe name, then `--set` overrides (default: cnn-classic on the
folder of digits).
multi-worker: one MultiWorkerMirroredStrategy worker (TF_CONFIG from the environment); saves its
final weights.
"""

import sys

import numpy as np
import tensorflow as tf

# Not `cnn`: its BatchNormalization keeps moving statistics per replica (as Keras does without
# sync), which differ between the strategies while the trained weights agree.
RECIPE = "cnn-classic"


def recipe(data_dir, strategy, steps, name=RECIPE, sets=()):
    from training import recipes

    return recipes.resolve(
        name,
        [
            f"data.dataset=folder:{data_dir}",
            *sets,
            f"run.strategy={strategy}",
            "run.tiny=true",
            "train.batch_size=32",
            f"train.max_steps={steps}",
            "train.log_every=1000",
            "data.shuffle_buffer=256",
        ],
    )


def weights(result):
    return {f"w{i}": w for i, w in enumerate(result.model.get_weights())}


def main():
    mode, out, data_dir, logdir = sys.argv[1:5]
    name, *sets = sys.argv[5:] or [RECIPE]
    steps = 6
    from training import loop

    if mode == "mirrored-vs-one":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        saved = {}
        for strategy in ("one_device", "mirrored"):
            result = loop.train(
                recipe(data_dir, strategy, steps, name, sets),
                logdir=f"{logdir}/{strategy}",
                verbose=False,
            )
            assert result.steps == steps
            saved.update({f"{strategy}/{k}": v for k, v in weights(result).items()})
            saved.update({f"{strategy}/metric_{k}": v for k, v in result.metrics.items()})
        np.savez(out, **saved)
    elif mode == "multi-worker":
        result = loop.train(recipe(data_dir, "multi_worker", steps), logdir=logdir, verbose=False)
        assert result.steps == steps
        np.savez(out, **weights(result))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

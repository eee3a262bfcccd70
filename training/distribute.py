"""Strategies by name, and who the chief is.

`auto`: MirroredStrategy over all GPUs when there is more than one, else one device.
`one_device`, `mirrored` (all local GPUs, or all logical CPUs when there are no GPUs),
`multi_worker` (MultiWorkerMirroredStrategy from TF_CONFIG).

Mixed precision by name: `float16`, `bfloat16`, `float32` (or None: off), and `auto`: bfloat16 on
GPUs that compute in it natively (compute capability 8.0 and up: A100, H100), float16 with loss
scaling on older GPUs, off on CPUs (where either is slower than float32).
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
PRECISIONS = ("auto", "float16", "bfloat16", "float32")


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    if name == "multi_worker":  # first: collective ops must be set up before TF starts
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy multi_worker needs TF_CONFIG (cluster and task) in the environment"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return task_type == "worker" and task_id == 0 and not has_chief


def mixed_precision(name: str | None) -> str | None:
    """`float16`, `bfloat16` or None (float32) for a recipe's `run.mixed_precision`."""
    if name not in (None, *PRECISIONS):
        raise ValueError(f"unknown mixed precision {name!r} (known: {', '.join(PRECISIONS)})")
    if name != "auto":
        return None if name == "float32" else name
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return "bfloat16" if capability and capability >= (8, 0) else "float16"

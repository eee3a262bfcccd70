"""ResNet-50 training throughput on one accelerator: the zoo's against keras.applications'.

Runs on the JAX backend with no TensorFlow installed (the zoo is pure Keras). Each model trains on
synthetic data that is already on the device: bf16 mixed precision, a jitted train step built from
Keras' stateless API (`model.stateless_call` + `optimizer.stateless_apply`, SGD with momentum),
parameters/optimizer state donated to the step so XLA updates them in place. After compile and
warm-up steps, `--repeats` windows of `--steps` steps are timed with `jax.block_until_ready`;
images/s is the median window.

    KERAS_BACKEND=jax python bench/bench_gpu.py                      # batch 256, 224x224x3
    KERAS_BACKEND=jax python bench/bench_gpu.py --batch 4 --size 64 --steps 2 --warmup 1  # smoke

`--models` takes zoo names and `keras.<Application>` names, comma-separated. Prints images/s per
model and the ratio first/second; writes JSON to bench/results/gpu.json (`--out`).
Note: the zoo's ResNet-50 is v1.5 (stride on the 3x3 conv), about 6% more FLOPs than keras' v1.
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=224, help="image side in pixels")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--steps", type=int, default=50, help="timed steps per window")
    p.add_argument("--repeats", type=int, default=3, help="timed windows; the median is reported")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps after compiling")
    p.add_argument("--models", default="resnet50,keras.ResNet50")
    p.add_argument("--dtype-policy", default="mixed_bfloat16")
    p.add_argument(
        "--data-format", choices=("channels_last", "channels_first"), default="channels_last"
    )
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "gpu.json"))
    return p.parse_args(argv)


def build_model(name, input_shape, classes):
    """A zoo model by name, or `keras.<Application>` with random weights; logits out."""
    if name.startswith("keras."):
        app = getattr(keras.applications, name.split(".", 1)[1])
        return app(
            weights=None, input_shape=input_shape, classes=classes, classifier_activation=None
        )
    import zoo

    return zoo.build(name, input_shape=input_shape, num_classes=classes, classifier_activation=None)


def make_train_step(model, optimizer):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def compute_loss(trainable, non_trainable, images, labels):
        logits, non_trainable = model.stateless_call(
            trainable, non_trainable, images, training=True
        )
        return loss_fn(labels, logits.astype("float32")), non_trainable

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    def train_step(state, images, labels):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, images, labels)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return (trainable, non_trainable, opt_vars), loss

    # The old state is dead once the step returns: donating it lets XLA reuse its buffers.
    return jax.jit(train_step, donate_argnums=0)


def bench_model(name, args, images, labels):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    shape = tuple(images.shape[1:])
    model = build_model(name, shape, args.classes)
    optimizer = keras.optimizers.SGD(learning_rate=args.lr, momentum=0.9)
    optimizer.build(model.trainable_variables)
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    step = make_train_step(model, optimizer)

    t0 = time.perf_counter()
    compiled = step.lower(state, images, labels).compile()
    compile_s = time.perf_counter() - t0
    flops = None
    try:  # XLA's own count for one step (forward + backward + update), where the backend has it
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list | tuple) else cost
        flops = float(cost.get("flops")) or None
    except Exception:  # noqa: BLE001 - cost analysis is optional
        flops = None

    for _ in range(args.warmup):
        state, loss = compiled(state, images, labels)
    jax.block_until_ready((state, loss))

    windows = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            state, loss = compiled(state, images, labels)
        jax.block_until_ready((state, loss))
        windows.append(time.perf_counter() - t0)
    seconds = statistics.median(windows)
    images_per_s = args.batch * args.steps / seconds
    result = {
        "model": name,
        "keras_name": model.name,
        "params": int(model.count_params()),
        "compile_s": round(compile_s, 2),
        "step_ms": round(1000 * seconds / args.steps, 3),
        "images_per_s": round(images_per_s, 1),
        "window_images_per_s": [round(args.batch * args.steps / w, 1) for w in windows],
        "final_loss": float(loss),
        "step_tflop": round(flops / 1e12, 4) if flops else None,
        "tflops_per_s": round(flops * args.steps / seconds / 1e12, 1) if flops else None,
    }
    if not np.isfinite(result["final_loss"]):  # speed is still measured; say so
        print(f"warning: {name} loss is {result['final_loss']}", file=sys.stderr)
    del state, compiled, step, model, optimizer
    return result


def main(argv=None):
    args = parse_args(argv)
    if keras.backend.backend() != "jax":
        sys.exit(f"bench_gpu.py needs KERAS_BACKEND=jax (got {keras.backend.backend()})")
    keras.config.set_image_data_format(args.data_format)
    keras.mixed_precision.set_dtype_policy(args.dtype_policy)
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}, "
          f"keras {keras.__version__}, policy {args.dtype_policy}, {args.data_format}")  # fmt: skip

    if args.data_format == "channels_last":
        shape = (args.batch, args.size, args.size, 3)
    else:
        shape = (args.batch, 3, args.size, args.size)
    k_images, k_labels = jax.random.split(jax.random.key(0))
    images = jax.device_put(jax.random.uniform(k_images, shape, minval=0.0, maxval=255.0), device)
    labels = jax.device_put(jax.random.randint(k_labels, (args.batch,), 0, args.classes), device)

    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        r = bench_model(name, args, images, labels)
        results.append(r)
        print(f"{name:>24}: {r['images_per_s']:10.1f} images/s  ({r['step_ms']:.1f} ms/step, "
              f"compile {r['compile_s']:.1f} s, {r['params']:,} params, "
              f"{r['tflops_per_s']} TFLOP/s)", flush=True)  # fmt: skip
    ratio = None
    if len(results) >= 2:
        ratio = round(results[0]["images_per_s"] / results[1]["images_per_s"], 4)
        print(f"ratio {results[0]['model']} / {results[1]['model']}: {ratio:.3f}")

    report = {
        "benchmark": "train_step_throughput",
        "device": device.device_kind,
        "platform": device.platform,
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "backend": keras.backend.backend(),
        "dtype_policy": args.dtype_policy,
        "data_format": args.data_format,
        "batch": args.batch,
        "image_size": args.size,
        "classes": args.classes,
        "steps": args.steps,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "optimizer": f"SGD(lr={args.lr}, momentum=0.9)",
        "results": results,
        "ratio_first_over_second": ratio,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()

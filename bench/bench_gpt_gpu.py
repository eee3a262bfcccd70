"""nanoGPT's shakespeare_char on one accelerator: the zoo's GPT, best validation loss and wall time.

Runs on the JAX backend with no TensorFlow installed (the zoo is pure Keras). The data is the
tiny_shakespeare text read from a file (`--data`, the original input.txt); as in nanoGPT's
data/shakespeare_char/prepare.py the vocabulary is its sorted characters (65) and the first 90% is
training text, the rest validation. As in nanoGPT's train.py with config/train_shakespeare_char.py:
batches of 64 windows of 256 characters at random offsets (drawn on the device), 6 layers, 6
heads, width 384, dropout 0.2, no biases; AdamW (lr 1e-3, betas 0.9/0.99, eps 1e-8, weight
decay 0.1 on matrices and embeddings only), 100 linear warm-up steps then cosine to 1e-4 at
iteration 5000, gradients clipped to global norm 1; bf16 mixed precision; every 250 iterations
the mean loss of 200 random validation batches (and training batches), dropout off.

One jitted step from Keras' stateless API (`model.stateless_call` + `optimizer.stateless_apply`),
state donated so XLA updates it in place. Prints each evaluation, the best validation loss, the
wall time (compile and evaluations included) and writes JSON to bench/results/gpt_gpu.json.

    KERAS_BACKEND=jax python bench/bench_gpt_gpu.py           # the full run (an H100/A100)
    KERAS_BACKEND=jax python bench/bench_gpt_gpu.py --tiny --iters 20 --eval-every 10 \\
        --eval-iters 2 --out /tmp/gpt_smoke.json              # CPU smoke test

Anchor: nanoGPT reaches validation loss 1.4697 in about 3 minutes on one A100.
"""

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

SHAKESPEARE_CHAR = {  # nanoGPT config/train_shakespeare_char.py
    "block_size": 256,
    "num_layers": 6,
    "num_heads": 6,
    "d_model": 384,
    "dropout": 0.2,
    "bias": False,
}
TINY = {"block_size": 32, "num_layers": 2, "num_heads": 2, "d_model": 64, "dropout": 0.1}
ANCHOR = {"val_loss": 1.4697, "minutes": 3, "device": "A100", "source": "karpathy/nanoGPT README"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data",
        default=str(REPO.parent / "shared" / "data" / "tfds-manual" / "input.txt"),
        help="the tiny_shakespeare text (input.txt)",
    )
    p.add_argument("--iters", type=int, default=5000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=200)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dtype-policy", default="mixed_bfloat16")
    p.add_argument("--tiny", action="store_true", help="a tiny model, for a CPU smoke test")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "gpt_gpu.json"))
    return p.parse_args(argv)


def load_text(path):
    """(train ids, validation ids, characters): nanoGPT's 90/10 split of the whole text."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    chars = sorted(set(text))
    lookup = np.full(max(map(ord, chars)) + 1, -1, np.int32)
    lookup[[ord(c) for c in chars]] = np.arange(len(chars), dtype=np.int32)
    ids = lookup[np.frombuffer(text.encode("utf-32-le"), np.uint32)]
    n = int(0.9 * len(ids))
    return ids[:n], ids[n:], chars


def make_steps(model, optimizer, train_ids, val_ids, batch, block):
    """Jitted (state, key) -> (state, loss) training step, and (params, key) -> loss of one batch
    drawn from either split."""
    splits = {"train": jnp.asarray(train_ids), "val": jnp.asarray(val_ids)}

    def draw(ids, key):
        starts = jax.random.randint(key, (batch,), 0, ids.shape[0] - block - 1)
        windows = jax.vmap(lambda s: jax.lax.dynamic_slice(ids, (s,), (block + 1,)))(starts)
        return windows[:, :-1], windows[:, 1:]

    def loss_of(trainable, non_trainable, x, y, training):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=training)
        logp = jax.nn.log_softmax(logits.astype("float32"), axis=-1)
        loss = -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))
        return loss, non_trainable

    grad_fn = jax.value_and_grad(lambda *a: loss_of(*a, training=True), has_aux=True)

    def train_step(state, key):
        trainable, non_trainable, opt_vars = state
        x, y = draw(splits["train"], key)
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return (trainable, non_trainable, opt_vars), loss

    def eval_step(trainable, non_trainable, key, split):
        x, y = draw(splits[split], key)
        return loss_of(trainable, non_trainable, x, y, training=False)[0]

    return (
        jax.jit(train_step, donate_argnums=0),
        jax.jit(eval_step, static_argnames="split"),
    )


def main(argv=None):
    args = parse_args(argv)
    if keras.backend.backend() != "jax":
        sys.exit(f"bench_gpt_gpu.py needs KERAS_BACKEND=jax (got {keras.backend.backend()})")
    import zoo

    keras.mixed_precision.set_dtype_policy(args.dtype_policy)
    keras.utils.set_random_seed(args.seed)
    device = jax.devices()[0]
    train_ids, val_ids, chars = load_text(args.data)
    config = {**SHAKESPEARE_CHAR, **(TINY if args.tiny else {})}
    block = config["block_size"]
    print(
        f"device: {device.device_kind} ({device.platform}), jax {jax.__version__}, keras "
        f"{keras.__version__}, policy {args.dtype_policy}; {len(train_ids):,} train / "
        f"{len(val_ids):,} val characters, vocab {len(chars)}"
    )

    model = zoo.build("gpt", vocab_size=len(chars), **config)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        max(1, args.iters - args.warmup),
        alpha=args.min_lr / args.lr,
        warmup_target=args.lr,
        warmup_steps=args.warmup,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=args.weight_decay,
        beta_1=0.9,
        beta_2=0.99,
        epsilon=1e-8,
        global_clipnorm=1.0,
    )
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])  # norms, biases
    optimizer.build(model.trainable_variables)
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    train_step, eval_step = make_steps(model, optimizer, train_ids, val_ids, args.batch, block)
    print(f"gpt: {model.count_params():,} parameters, {config}")

    def evaluate(state, key):
        trainable, non_trainable, _ = state
        out = {}
        for split in ("train", "val"):
            losses = [
                eval_step(trainable, non_trainable, k, split=split)
                for k in jax.random.split(jax.random.fold_in(key, split == "val"), args.eval_iters)
            ]
            out[split] = float(jnp.mean(jnp.stack(losses)))
        return out

    key = jax.random.key(args.seed)
    history, best = [], math.inf
    started = time.perf_counter()
    compile_s = None
    for it in range(args.iters + 1):
        if it % args.eval_every == 0 or it == args.iters:
            losses = evaluate(state, jax.random.fold_in(key, 10**9 + it))
            best = min(best, losses["val"])
            elapsed = time.perf_counter() - started
            history.append({"iter": it, **losses, "seconds": round(elapsed, 2)})
            print(f"iter {it:5d}: train {losses['train']:.4f}  val {losses['val']:.4f}  "
                  f"({elapsed:.1f} s)", flush=True)  # fmt: skip
        if it == args.iters:
            break
        state, loss = train_step(state, jax.random.fold_in(key, it))
        if compile_s is None:
            jax.block_until_ready(loss)
            compile_s = time.perf_counter() - started
    jax.block_until_ready(state)
    wall = time.perf_counter() - started
    if not math.isfinite(float(loss)):
        print(f"warning: the training loss is {float(loss)}", file=sys.stderr)

    print(f"best val loss {best:.4f}; wall time {wall:.1f} s ({wall / 60:.2f} min, compile "
          f"{compile_s:.1f} s); nanoGPT anchor {ANCHOR['val_loss']} in about "
          f"{ANCHOR['minutes']} min on an {ANCHOR['device']}")  # fmt: skip
    report = {
        "benchmark": "gpt_shakespeare_char",
        "device": device.device_kind,
        "platform": device.platform,
        "jax": jax.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "backend": keras.backend.backend(),
        "dtype_policy": args.dtype_policy,
        "model": {**config, "vocab_size": len(chars), "params": int(model.count_params())},
        "train": {
            "iters": args.iters,
            "batch": args.batch,
            "lr": args.lr,
            "min_lr": args.min_lr,
            "warmup": args.warmup,
            "weight_decay": args.weight_decay,
            "eval_every": args.eval_every,
            "eval_iters": args.eval_iters,
            "seed": args.seed,
        },
        "best_val_loss": round(best, 4),
        "final": history[-1],
        "wall_seconds": round(wall, 1),
        "compile_seconds": round(compile_s or 0.0, 1),
        "history": history,
        "anchor": ANCHOR,
        "meets_target": bool(best <= 1.47 and wall < 180),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()

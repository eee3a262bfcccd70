"""The training loop: one custom distributed loop for every tf.distribute strategy.

`strategy.run` + a Keras model + Keras optimizers (Keras 3 `Model.fit` fails under
MultiWorkerMirroredStrategy, keras-team/keras#20585). The task owns the per-replica step; the loop
owns everything around it: data order, checkpoints and resume, SIGTERM, NaN, TensorBoard, and the
hand-off to the exporter. Only the chief writes.

Run directory: runs/<recipe>/<UTC time>/ with recipe.json, train/ and validation/ event files,
checkpoints/, model.keras, calibration.npz, export_info.json, metrics.json.
"""

import contextlib
import dataclasses
import datetime
import json
import math
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

import zoo
from training import data, distribute, optimizers
from training.tasks import get_task

SUM = tf.distribute.ReduceOp.SUM


class TrainingError(Exception):
    """The run started but cannot go on (e.g. the loss became NaN)."""


class Interrupted(Exception):
    """SIGTERM: a checkpoint was saved; `--resume` continues."""


@dataclasses.dataclass
class RunResult:
    run_dir: pathlib.Path
    steps: int
    metrics: dict
    model: keras.Model
    export_dir: pathlib.Path | None = None
    seconds: float = 0.0


def find_resumable(logdir, recipe_name) -> pathlib.Path | None:
    """The newest run of `recipe_name` under `logdir` that has a checkpoint."""
    runs = sorted(pathlib.Path(logdir, recipe_name).glob("*/checkpoints/checkpoint"))
    return runs[-1].parent.parent if runs else None


def train(
    recipe, *, logdir="runs", export_dir="exports", resume_dir=None, export=True, verbose=True
):
    """Train `recipe` (a resolved recipe dict); returns a RunResult. Raises ValueError,
    data.DataError or zoo.UnknownModelError before anything is written, TrainingError or
    Interrupted after."""
    run = recipe["run"]
    strategy = distribute.make_strategy(run["strategy"])
    chief = distribute.is_chief(strategy)
    say = print if (verbose and chief) else (lambda *a, **k: None)

    # Everything that can be wrong with the request is checked before a directory is made.
    spec = zoo.get_spec(recipe["model"]["name"])
    task = get_task(recipe["task"]["name"])(
        recipe["task"], data.open_source(recipe["data"]["dataset"])
    )
    cfg, dcfg = recipe["train"], recipe["data"]
    train_ds = data.prepared(task.source, dcfg["train_split"], task.inputs, dcfg["cache"])
    val_ds = data.prepared(task.source, dcfg["validation_split"], task.inputs, dcfg["cache"])
    n_train = data.count(train_ds)
    batch = int(cfg["batch_size"])
    steps_per_epoch = n_train // batch
    if steps_per_epoch == 0:
        raise data.DataError(f"{n_train} training examples are fewer than one batch of {batch}")
    total_steps = int(cfg["epochs"]) * steps_per_epoch
    if cfg["max_steps"]:
        total_steps = min(total_steps, int(cfg["max_steps"]))
    precision = distribute.mixed_precision(run["mixed_precision"])
    policy = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16", None: "float32"}

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_dtype_policy(policy[precision])
    keras.utils.set_random_seed(int(cfg["seed"]))
    try:
        with strategy.scope():
            overrides = {**task.model_overrides(), **recipe["model"]["overrides"]}
            model = zoo.build(spec.name, tiny=run["tiny"], **overrides)
            opts = task.build_optimizers(
                model,
                lambda: optimizers.build(
                    recipe["optimizer"], total_steps, loss_scale=precision == "float16"
                ),
            )
            step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
            checkpoint = tf.train.Checkpoint(
                model=model, step=step_var, **{f"optimizer_{k}": o for k, o in opts.items()}
            )

        run_dir = (
            pathlib.Path(resume_dir) if resume_dir else _new_run_dir(logdir, recipe["name"], chief)
        )
        ckpt_dir = (
            run_dir / "checkpoints" if chief else pathlib.Path(tempfile.mkdtemp()) / "checkpoints"
        )
        manager = tf.train.CheckpointManager(
            checkpoint,
            str(ckpt_dir),
            max_to_keep=int(cfg["keep_checkpoints"]),
            step_counter=step_var,
        )
        if resume_dir:
            if not manager.latest_checkpoint:
                raise ValueError(f"nothing to resume in {run_dir}: it has no checkpoint")
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            say(f"resuming {run_dir} from {manager.latest_checkpoint}")
        if chief:
            (run_dir / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        writers = _Writers(run_dir, chief)
        if chief and not resume_dir:
            writers.hparams(recipe, run_dir.name, task.metrics)

        loop = _Loop(strategy, task, model, opts, batch, run["jit"])
        say(
            f"training {spec.name} on {recipe['data']['dataset']} ({n_train} examples, "
            f"{steps_per_epoch} steps/epoch, {total_steps} steps, {strategy.num_replicas_in_sync} "
            f"replica(s), {policy[precision]}) -> {run_dir}"
        )
        # a fixed sample for pictures, drawn across the split (folders are sorted by label)
        sample = next(iter(val_ds.shuffle(2048, seed=0).batch(25).as_numpy_iterator()))
        started = time.time()
        step = int(step_var.numpy())
        metrics = {}
        with _sigterm_flag() as stop:
            while step < total_steps:
                epoch = step // steps_per_epoch
                batches = data.train_batches(
                    train_ds,
                    batch_size=batch,
                    epoch=epoch,
                    seed=int(cfg["seed"]),
                    shuffle_buffer=int(dcfg["shuffle_buffer"]),
                    augment=task.augment,
                    skip=step % steps_per_epoch,
                )
                log_every, ckpt_every = int(cfg["log_every"]), int(cfg["checkpoint_every"])
                epoch_end = min((epoch + 1) * steps_per_epoch, total_steps)
                iterator = iter(strategy.experimental_distribute_dataset(batches))
                epoch_totals, window, window_start = {}, {}, time.time()
                while step < epoch_end:
                    # one compiled loop up to the next log, checkpoint or epoch boundary
                    first = step + 1
                    step = min(
                        _next_multiple(step, log_every), _next_multiple(step, ckpt_every), epoch_end
                    )
                    sums = loop.train(iterator, step - first + 1)
                    bad = [k for k, v in sums.items() if np.ndim(v) == 0 and not math.isfinite(v)]
                    if bad:
                        last = manager.latest_checkpoint or "none (no checkpoint was saved yet)"
                        raise TrainingError(
                            f"{', '.join(bad)} became {sums[bad[0]]} in steps {first}-{step}: "
                            f"stopped. Last good checkpoint: {last}"
                        )
                    _accumulate(epoch_totals, sums)
                    _accumulate(window, sums)
                    if step % log_every == 0 or step == epoch_end:
                        elapsed = max(time.time() - window_start, 1e-9)
                        scalars = {f"batch_{k}": v for k, v in task.results(window).items()}
                        scalars["examples_per_second"] = window["count"] / elapsed
                        scalars.update(_learning_rates(opts, step))
                        writers.scalars("train", scalars, step)
                        say(
                            _progress(epoch, cfg["epochs"], step, total_steps, scalars),
                            end="\r" if sys.stdout.isatty() else "\n",
                        )
                        window, window_start = {}, time.time()
                    if step % ckpt_every == 0:
                        _save(manager, step_var, step, chief)
                    if stop:
                        _save(manager, step_var, step, chief)
                        raise Interrupted(
                            f"SIGTERM at step {step}: checkpoint saved in {ckpt_dir}; "
                            f"continue with --resume"
                        )
                val_totals = loop.evaluate(
                    strategy.experimental_distribute_dataset(
                        data.eval_batches(val_ds, batch_size=int(cfg["eval_batch_size"]))
                    )
                )
                metrics = task.results(val_totals)
                writers.scalars(
                    "train", {f"epoch_{k}": v for k, v in task.results(epoch_totals).items()}, step
                )
                writers.scalars("validation", {f"epoch_{k}": v for k, v in metrics.items()}, step)
                if chief:
                    with writers.validation.as_default():
                        extra = task.log_epoch(model, sample, val_totals, step) or {}
                    metrics.update(extra)
                    writers.scalars("validation", {f"epoch_{k}": v for k, v in extra.items()}, step)
                    with writers.train.as_default():
                        for variable in model.trainable_variables:
                            tf.summary.histogram(variable.path, variable.value, step=step)
                    writers.flush()
                _save(manager, step_var, step, chief)
                if chief:
                    _save_model(model, run_dir / "model.keras")
                say(
                    f"\nepoch {epoch + 1}: "
                    + "  ".join(f"val_{k} {v:.4f}" for k, v in metrics.items())
                )
        seconds = time.time() - started
        result = RunResult(run_dir, step, metrics, model, seconds=seconds)
        if chief:
            _finish(run_dir, task, train_ds, val_ds, metrics, step, seconds)
            say(
                f"done: {step} steps in {seconds:.1f} s; "
                + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            )
            if export:
                result.export_dir = _export(run_dir, export_dir, recipe, say)
        writers.close()
        if not chief:
            shutil.rmtree(ckpt_dir.parent, ignore_errors=True)
        return result
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


class _Loop:
    """The compiled distributed steps: per-replica task steps, summed across replicas."""

    def __init__(self, strategy, task, model, opts, global_batch, jit):
        def replica_train(batch):
            return task.train_step(model, opts, batch, global_batch)

        def replica_eval(batch):
            return task.eval_step(model, batch)

        if jit:
            replica_train = tf.function(replica_train, jit_compile=True)
            replica_eval = tf.function(replica_eval, jit_compile=True)

        @tf.function
        def train(iterator, n):
            totals = _reduce(strategy, strategy.run(replica_train, args=(next(iterator),)))
            for _ in tf.range(n - 1):
                sums = _reduce(strategy, strategy.run(replica_train, args=(next(iterator),)))
                totals = {k: totals[k] + sums[k] for k in totals}
            return totals

        @tf.function
        def evaluate(batch):
            return _reduce(strategy, strategy.run(replica_eval, args=(batch,)))

        self._train, self._eval = train, evaluate

    def train(self, iterator, steps: int) -> dict:
        """`steps` steps in one call; the sums of all of them."""
        return {k: v.numpy() for k, v in self._train(iterator, tf.constant(steps)).items()}

    def evaluate(self, dist_ds) -> dict:
        totals = {}
        for batch in dist_ds:
            _accumulate(totals, {k: v.numpy() for k, v in self._eval(batch).items()})
        return totals


def _reduce(strategy, per_replica: dict) -> dict:
    return {k: strategy.reduce(SUM, v, axis=None) for k, v in per_replica.items()}


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def _accumulate(totals: dict, sums: dict) -> None:
    for k, v in sums.items():
        totals[k] = totals[k] + v if k in totals else v


def _learning_rates(opts: dict, step: int) -> dict:
    rates = {}
    for name, opt in opts.items():
        tag = "learning_rate" if len(opts) == 1 else f"learning_rate/{name}"
        rates[tag] = float(keras.ops.convert_to_numpy(opt.learning_rate))
    return rates


def _progress(epoch, epochs, step, total, scalars) -> str:
    shown = "  ".join(
        f"{k.removeprefix('batch_')} {v:.4g}" for k, v in scalars.items() if k.startswith("batch_")
    )
    speed = scalars["examples_per_second"]
    return f"epoch {epoch + 1}/{epochs}  step {step}/{total}  {shown}  {speed:.0f} ex/s"


def _save(manager, step_var, step, chief):
    step_var.assign(step)
    manager.save(checkpoint_number=step)


def _save_model(model, path: pathlib.Path):
    tmp = path.with_name(f".{path.name}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _new_run_dir(logdir, recipe_name, chief) -> pathlib.Path:
    if not chief:
        return pathlib.Path(tempfile.mkdtemp(prefix="zoo-worker-"))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = pathlib.Path(logdir, recipe_name, stamp)
    n = 1
    while run_dir.exists():
        run_dir = pathlib.Path(logdir, recipe_name, f"{stamp}-{n}")
        n += 1
    run_dir.mkdir(parents=True)
    return run_dir


def _finish(run_dir, task, train_ds, val_ds, metrics, steps, seconds):
    arrays = task.calibration(train_ds, val_ds)
    if arrays:
        np.savez_compressed(run_dir / "calibration.npz", **arrays)
    info = {"task": task.name, **task.export_info()}
    (run_dir / "export_info.json").write_text(json.dumps(info, indent=2) + "\n")
    summary = {"steps": steps, "seconds": round(seconds, 2), "validation": metrics}
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")


def _export(run_dir, export_dir, recipe, say):
    from serving import export as exporter
    from serving import tflite

    version_dir = exporter.export_run(run_dir, export_dir)
    say(f"exported SavedModel -> {version_dir}")
    if recipe["export"]["tflite"]:
        report = tflite.convert(version_dir, recipe["export"]["tflite"])
        say(f"TFLite variants and report -> {report.parent}")
    return version_dir


class _Writers:
    """train/ and validation/ event files (no-op writers off the chief)."""

    def __init__(self, run_dir, chief):
        make = (
            tf.summary.create_file_writer if chief else (lambda _: tf.summary.create_noop_writer())
        )
        self.root = make(str(run_dir))
        self.train = make(str(run_dir / "train"))
        self.validation = make(str(run_dir / "validation"))

    def scalars(self, which, values: dict, step: int):
        with getattr(self, which).as_default():
            for tag, value in values.items():
                tf.summary.scalar(tag, value, step=step)

    def hparams(self, recipe, trial, metrics):
        flat = {k: v for k, v in _flatten(recipe).items() if isinstance(v, (bool, int, float, str))}
        with self.root.as_default():
            hp.hparams_config(
                hparams=[hp.HParam(k) for k in flat],
                metrics=[
                    hp.Metric(f"epoch_{m}", group="validation", display_name=f"validation {m}")
                    for m in metrics
                ],
            )
            hp.hparams(flat, trial_id=trial)

    def flush(self):
        for w in (self.root, self.train, self.validation):
            w.flush()

    def close(self):
        for w in (self.root, self.train, self.validation):
            w.close()


def _flatten(tree, prefix=""):
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        elif v is not None:
            flat[f"{prefix}{k}"] = v if not isinstance(v, (list, tuple)) else json.dumps(v)
    return flat


@contextlib.contextmanager
def _sigterm_flag():
    """A list that becomes truthy when SIGTERM arrives (the loop saves and stops)."""
    flag = []
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: flag.append(True))
    except ValueError:  # not the main thread: no handler
        previous = None
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

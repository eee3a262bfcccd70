"""The training loop: one custom distributed loop for every tf.distribute strategy.

`strategy.run` + a Keras model + Keras optimizers (Keras 3 `Model.fit` fails under
MultiWorkerMirroredStrategy, keras-team/keras#20585). The task owns the per-replica step; the loop
owns everything around it: data order, checkpoints and resume, SIGTERM, NaN, progress and
TensorBoard. Only the chief writes. Exporting is not the loop's job: the command line hands the
finished run directory to `python -m serving export` once `train` has returned.

    train(recipe)  =  _setup  (check the request, build, restore; nothing written before it passes)
                   -> _epoch  (steps in compiled chunks between log/checkpoint points, then
                               validation, pictures, a checkpoint and model.keras) until done
                   -> _finish (calibration sample, export_info.json, metrics.json)

Run directory: runs/<recipe>/<UTC time>/ with recipe.json, train/ and validation/ event files,
checkpoints/, model.keras, calibration.npz, export_info.json, metrics.json.
"""

import contextlib
import dataclasses
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

import console
import zoo
from training import data, distribute, extensions, optimizers, tooling, transfer
from training.tasks import get_task
from training.tasks.base import EXAMPLES

SUM = tf.distribute.ReduceOp.SUM
POLICIES = {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16", None: "float32"}


class TrainingError(Exception):
    """The run started but cannot go on (e.g. the loss became NaN)."""


class Interrupted(Exception):
    """SIGTERM: a checkpoint was saved; `--resume` continues."""


@dataclasses.dataclass
class RunResult:
    run_dir: pathlib.Path
    steps: int
    metrics: dict  # validation metrics of the last epoch
    model: keras.Model
    seconds: float = 0.0
    chief: bool = True  # only the chief's run directory is kept (and exported)


def find_resumable(logdir, recipe_name) -> pathlib.Path | None:
    """The newest run of `recipe_name` under `logdir` that has a checkpoint."""
    runs = sorted(pathlib.Path(logdir, recipe_name).glob("*/checkpoints/checkpoint"))
    return runs[-1].parent.parent if runs else None


def train(recipe, *, logdir="runs", resume_dir=None, verbose=True) -> RunResult:
    """Train `recipe` (a resolved recipe dict); returns a RunResult. Raises ValueError,
    data.DataError or zoo.UnknownModelError before anything is written, TrainingError or
    Interrupted after."""
    previous_policy = keras.mixed_precision.global_policy()
    run = None
    try:
        run = _setup(recipe, logdir, resume_dir, verbose)
        with sigterm_flag() as stop:
            while run.step < run.total_steps:
                _epoch(run, stop)
        return _finish(run)
    finally:
        if run is not None:
            run.close()
        keras.mixed_precision.set_dtype_policy(previous_policy)


@dataclasses.dataclass
class _Run:
    """Everything one run carries from setup through its epochs to the finish."""

    recipe: dict
    strategy: tf.distribute.Strategy
    chief: bool
    task: object
    model: keras.Model
    opts: dict
    loop: "_Loop | None"
    train_ds: tf.data.Dataset
    val_ds: tf.data.Dataset
    steps_per_epoch: int
    total_steps: int
    run_dir: pathlib.Path
    manager: tf.train.CheckpointManager
    step_var: tf.Variable
    writers: "Writers"
    progress: "_Progress"
    extensions: list  # training/extensions/ that the recipe enables
    frozen: list  # layers that train.freeze holds still for the first freeze_steps (0: always)
    freeze_steps: int
    sample: tuple  # a fixed batch of validation examples for pictures
    say: object
    step: int = 0
    frozen_now: bool | None = None  # whether `frozen` is frozen in the compiled steps of `loop`
    metrics: dict = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.time)

    @property
    def cfg(self):
        return self.recipe["train"]

    def close(self):
        self.writers.close()
        if not self.chief:  # a worker's run and checkpoint directories are temporary
            shutil.rmtree(pathlib.Path(self.manager.directory).parent, ignore_errors=True)
            shutil.rmtree(self.run_dir, ignore_errors=True)


def _setup(recipe, logdir, resume_dir, verbose) -> _Run:
    run, cfg, dcfg = recipe["run"], recipe["train"], recipe["data"]
    with console.quiet():  # the first device query prints CUDA notices on CPU-only machines
        strategy = distribute.make_strategy(run["strategy"])  # first: multi_worker sets up TF
        precision = distribute.mixed_precision(run["mixed_precision"])
    chief = distribute.is_chief(strategy)
    say = print if (verbose and chief) else (lambda *a, **k: None)

    # Everything that can be wrong with the request is checked before a directory is made.
    spec = zoo.get_spec(recipe["model"]["name"])
    task_class = get_task(recipe["task"]["name"])
    zoo.check_signatures(task_class.export_kind(), recipe["export"]["saved_model"]["signatures"])
    source = data.open_source(dcfg["dataset"], dcfg.get("fallback"))
    if (dcfg.get("hold_out") or {}).get("group") is not None:
        held = dcfg["hold_out"]  # train on the other groups, validate on this one
        source = data.hold_out(source, held["key"], held["pattern"], str(held["group"]))
        dcfg["train_split"], dcfg["validation_split"] = data.KEPT, data.HELD_OUT
    source = data.subset(source, dcfg["classes"], dcfg["per_class"], dcfg["train_split"])
    task = task_class(recipe["task"], source)
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

    added = extensions.active(recipe, total_steps)  # their settings are checked here
    freeze_steps = 0
    if cfg["freeze"] and int(cfg["freeze_epochs"]) > 0:
        freeze_steps = min(int(cfg["freeze_epochs"]) * steps_per_epoch, total_steps)
    restart = None
    if 0 < freeze_steps < total_steps:
        restart = (freeze_steps, float(cfg["unfreeze_lr_scale"]))

    keras.mixed_precision.set_dtype_policy(POLICIES[precision])
    keras.utils.set_random_seed(int(cfg["seed"]))
    with strategy.scope():
        overrides = {**task.model_overrides(), **recipe["model"]["overrides"]}
        model = zoo.build(spec.name, tiny=run["tiny"], **overrides)
        report = None
        if recipe["model"]["init_from"] and not resume_dir:
            report = transfer.init_from(
                model, recipe["model"]["init_from"], recipe["model"]["init_exclude"]
            )
            say(report.summary())
        frozen = transfer.frozen_layers(model, cfg["freeze"], report)
        for extension in added:
            model = extension.wrap(model)
            extension.build(model)
        opts = task.build_optimizers(
            model,
            lambda: optimizers.build(
                recipe["optimizer"],
                total_steps,
                loss_scale=precision == "float16",
                restart=restart,
            ),
        )  # on every trainable variable: the frozen ones train later
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        kept = {f"optimizer_{k}": o for k, o in opts.items()}
        kept.update({f"extension_{e.section}": e.checkpoint() for e in added if e.checkpoint()})
        checkpoint = tf.train.Checkpoint(model=model, step=step_var, **kept)

    if resume_dir:
        run_dir = pathlib.Path(resume_dir)
    else:
        run_dir = _new_run_dir(logdir, recipe["name"], chief)
    ckpt_root = run_dir if chief else pathlib.Path(tempfile.mkdtemp())
    ckpt_dir = ckpt_root / "checkpoints"
    manager = tf.train.CheckpointManager(
        checkpoint, str(ckpt_dir), max_to_keep=int(cfg["keep_checkpoints"]), step_counter=step_var
    )
    if resume_dir:
        if not manager.latest_checkpoint:
            raise ValueError(f"nothing to resume in {run_dir}: it has no checkpoint")
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        say(f"resuming {run_dir} from {manager.latest_checkpoint}")
    if chief:
        (run_dir / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        if report is not None:
            (run_dir / "init_report.json").write_text(report.to_json())
    writers = Writers(run_dir, chief)
    if chief and not resume_dir:
        writers.hparams(recipe, f"{recipe['name']}/{run_dir.name}")
    say(
        f"training {spec.name} on {task.source.name} ({n_train} examples, {steps_per_epoch} "
        f"steps/epoch, {total_steps} steps, {strategy.num_replicas_in_sync} replica(s), "
        f"{POLICIES[precision]}) -> {run_dir}"
    )
    # a fixed sample for pictures, drawn across the split (folders are sorted by label)
    sample = next(iter(val_ds.shuffle(2048, seed=0).batch(25).as_numpy_iterator()))
    return _Run(
        recipe=recipe,
        strategy=strategy,
        chief=chief,
        task=task,
        model=model,
        opts=opts,
        loop=None,  # built by each epoch for the layers it trains
        frozen=frozen,
        freeze_steps=freeze_steps,
        extensions=added,
        train_ds=train_ds,
        val_ds=val_ds,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        run_dir=run_dir,
        manager=manager,
        step_var=step_var,
        writers=writers,
        progress=_Progress(verbose and chief, float(run["progress_seconds"])),
        sample=sample,
        say=say,
        step=int(step_var.numpy()),
    )


def _epoch(run: _Run, stop):
    """One epoch (or what is left of it): train to its end, then validate, log and save."""
    cfg, dcfg = run.cfg, run.recipe["data"]
    epoch = run.step // run.steps_per_epoch
    epoch_start = epoch * run.steps_per_epoch
    epoch_end = min(epoch_start + run.steps_per_epoch, run.total_steps)
    batches = data.train_batches(
        run.train_ds,
        batch_size=int(cfg["batch_size"]),
        epoch=epoch,
        seed=int(cfg["seed"]),
        shuffle_buffer=int(dcfg["shuffle_buffer"]),
        augment=run.task.augment,
        skip=run.step - epoch_start,
    )
    _trainable(run)
    log_every, ckpt_every = int(cfg["log_every"]), int(cfg["checkpoint_every"])
    title = f"epoch {epoch + 1}/{cfg['epochs']}"
    run.progress.start(title, run.step - epoch_start, epoch_end - epoch_start)
    totals, window, window_start = {}, {}, time.time()
    iterator = iter(run.strategy.experimental_distribute_dataset(batches))
    while run.step < epoch_end:
        # one compiled loop up to the next log, checkpoint or epoch boundary
        first = run.step + 1
        run.step = min(_next_multiple(run.step, log_every), _next_multiple(run.step, ckpt_every))
        run.step = min(run.step, epoch_end)
        sums = run.loop.train(iterator, first, run.step - first + 1)
        _check_finite(run, sums, first)
        _accumulate(totals, sums)
        _accumulate(window, sums)
        if run.step % log_every == 0 or run.step == epoch_end:
            elapsed = max(time.time() - window_start, 1e-9)
            scalars = {f"batch_{k}": v for k, v in run.task.results(window).items()}
            scalars["examples_per_second"] = window["count"] / elapsed
            scalars.update(_learning_rates(run.opts))
            run.writers.scalars("train", scalars, run.step)
            run.progress.update(run.step - epoch_start, scalars)
            window, window_start = {}, time.time()
        if run.step % ckpt_every == 0:
            _save(run)
        if run.loop.any_worker(bool(stop)):
            _save(run)
            run.progress.close()
            raise Interrupted(
                f"SIGTERM at step {run.step}: checkpoint saved in {run.manager.directory}; "
                "continue with --resume"
            )
    del iterator  # its prefetch threads end now, not at interpreter exit
    seconds = run.progress.close()

    val_totals = run.loop.evaluate(
        run.strategy.experimental_distribute_dataset(
            data.eval_batches(run.val_ds, batch_size=int(cfg["eval_batch_size"]))
        )
    )
    run.metrics = run.task.results(val_totals)
    train_metrics = run.task.results(totals)
    run.writers.scalars("train", {f"epoch_{k}": v for k, v in train_metrics.items()}, run.step)
    if run.chief:
        with run.writers.validation.as_default():
            extra = run.task.log_epoch(run.model, run.sample, val_totals, run.step) or {}
        run.metrics.update(extra)
        with run.writers.train.as_default():
            for variable in run.model.trainable_variables:
                tf.summary.histogram(variable.path, variable.value, step=run.step)
        for extension in run.extensions:
            scalars = extension.epoch_scalars(run.model)
            run.writers.scalars(
                "train", {f"{extension.section}/{k}": v for k, v in scalars.items()}, run.step
            )
    run.writers.scalars("validation", {f"epoch_{k}": v for k, v in run.metrics.items()}, run.step)
    run.writers.flush()
    _save(run)
    if run.chief:
        kept = run.model
        for extension in reversed(run.extensions):
            kept = extension.unwrap(kept)
        save_model(kept, run.run_dir / "model.keras")
    done = run.step - epoch_start
    partial = ""
    if done < run.steps_per_epoch:
        partial = f" (partial: {done} of {run.steps_per_epoch} steps, max_steps reached)"
    run.say(
        f"{title}{partial}: {done} steps in {seconds:.1f} s; train {format_metrics(train_metrics)}"
        f" | validation {format_metrics(run.metrics)}"
    )


def _trainable(run: _Run):
    """Freeze `run.frozen` while the run is in its frozen phase, unfreeze after it; the compiled
    steps are (re)built when what trains changes, since they capture the trainable variables."""
    frozen = bool(run.frozen) and (not run.freeze_steps or run.step < run.freeze_steps)
    if run.loop is not None and run.frozen_now == frozen:
        return
    for layer in run.frozen:
        layer.trainable = not frozen
    if run.frozen and run.loop is not None:
        run.say(f"step {run.step}: {len(run.frozen)} frozen layers now train too")
    elif frozen:
        run.say(f"{len(run.frozen)} layers frozen (train.freeze={run.cfg['freeze']})")
    run.frozen_now = frozen
    batch, jit = int(run.cfg["batch_size"]), run.recipe["run"]["jit"]
    run.loop = _Loop(run.strategy, run.task, run.model, run.opts, batch, jit, run.extensions)


def _finish(run: _Run) -> RunResult:
    seconds = time.time() - run.started
    if run.chief:
        arrays = run.task.calibration(run.train_ds, run.val_ds)
        if arrays:
            np.savez_compressed(run.run_dir / "calibration.npz", **arrays)
        info = {"task": run.task.export_kind(), **run.task.export_info()}
        (run.run_dir / "export_info.json").write_text(json.dumps(info, indent=2) + "\n")
        summary = {"steps": run.step, "seconds": round(seconds, 2), "validation": run.metrics}
        (run.run_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    run.say(f"done: {run.step} steps in {seconds:.1f} s; validation {format_metrics(run.metrics)}")
    return RunResult(run.run_dir, run.step, run.metrics, run.model, seconds, run.chief)


def _check_finite(run: _Run, sums: dict, first: int):
    bad = [k for k, v in sums.items() if np.ndim(v) == 0 and not math.isfinite(v)]
    if bad:
        run.progress.close()
        last = run.manager.latest_checkpoint or "none (no checkpoint was saved yet)"
        raise TrainingError(
            f"{', '.join(bad)} became {sums[bad[0]]} in steps {first}-{run.step}: "
            f"stopped. Last good checkpoint: {last}"
        )


class _Loop:
    """The compiled distributed steps: per-replica task steps, summed across replicas."""

    def __init__(self, strategy, task, model, opts, global_batch, jit, extensions=()):
        def replica_train(batch):
            for extension in extensions:
                batch = extension.replica_batch(model, batch)
            return task.train_step(model, opts, batch, global_batch)

        def replica_eval(batch):
            return task.eval_step(model, batch)

        if jit:
            replica_train = tf.function(replica_train, jit_compile=True)
            replica_eval = tf.function(replica_eval, jit_compile=True)

        def step(iterator, number):
            sums = _reduce(strategy, strategy.run(replica_train, args=(next(iterator),)))
            for extension in extensions:
                extension.after_step(model, number)
            return sums

        @tf.function
        def train(iterator, first, n):
            totals = step(iterator, first)
            for i in tf.range(1, n, dtype=tf.int64):
                sums = step(iterator, first + i)
                totals = {k: totals[k] + sums[k] for k in totals}
            return totals

        @tf.function
        def evaluate(batch):
            return _reduce(strategy, strategy.run(replica_eval, args=(batch,)))

        @tf.function
        def anyone(flag):
            return strategy.reduce(SUM, strategy.run(lambda: tf.cast(flag, tf.int32)), None) > 0

        self._train, self._eval, self._anyone = train, evaluate, anyone
        self._workers = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def any_worker(self, flag: bool) -> bool:
        """Whether `flag` is set on any worker: SIGTERM reaches workers at different moments, and
        a worker that stops alone leaves the others waiting in the next step's all-reduce."""
        return bool(self._anyone(tf.constant(flag))) if self._workers else flag

    def train(self, iterator, first: int, steps: int) -> dict:
        """`steps` steps in one call, the run's steps `first`, `first + 1`, ...; the sums of all
        of them."""
        numbers = tf.constant(first, tf.int64), tf.constant(steps, tf.int64)
        return {k: v.numpy() for k, v in self._train(iterator, *numbers).items()}

    def evaluate(self, dist_ds) -> dict:
        """Sums over the split; the task's per-example outputs (EXAMPLES) concatenated."""
        totals, examples = {}, []
        for batch in dist_ds:
            sums = self._eval(batch)
            if EXAMPLES in sums:
                examples.append({k: v.numpy() for k, v in sums.pop(EXAMPLES).items()})
            _accumulate(totals, {k: v.numpy() for k, v in sums.items()})
        if examples:
            totals[EXAMPLES] = {k: np.concatenate([e[k] for e in examples]) for k in examples[0]}
        return totals


class _Progress:
    """A progress bar per epoch (elapsed, ETA, batch metrics) in a terminal; without one, a plain
    line at the first log step after every `seconds`. Silent off the chief and when not verbose."""

    def __init__(self, enabled, seconds):
        self.enabled, self.seconds, self.tty = enabled, seconds, sys.stdout.isatty()
        self.bar, self.started, self.last_line = None, 0.0, 0.0

    def start(self, title, done, total):
        self.title, self.total, self.started = title, total, time.time()
        self.last_line = self.started
        if self.enabled and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=done,
                desc=title,
                unit="step",
                leave=False,
                file=sys.stdout,
                dynamic_ncols=True,
            )

    def update(self, done, scalars):
        if not self.enabled:
            return
        shown = {k.removeprefix("batch_"): v for k, v in scalars.items() if k.startswith("batch_")}
        speed = f"{scalars['examples_per_second']:.0f} ex/s"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{format_metrics(shown, 4)}  {speed}", refresh=False)
            self.bar.update(done - self.bar.n)
        elif time.time() - self.last_line >= self.seconds and done < self.total:
            self.last_line = time.time()
            elapsed = self.last_line - self.started
            eta = elapsed / max(done, 1) * (self.total - done)
            print(
                f"{self.title}  step {done}/{self.total}  {format_metrics(shown, 4)}  {speed}  "
                f"{elapsed:.0f}s elapsed, ~{eta:.0f}s left",
                flush=True,
            )

    def close(self) -> float:
        """Ends the bar; the seconds since `start`."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        return time.time() - self.started


def format_metrics(metrics: dict, digits=4) -> str:
    return ", ".join(f"{k} {v:.{digits}g}" for k, v in metrics.items())


def _reduce(strategy, per_replica: dict) -> dict:
    """Sums across replicas; per-example outputs (EXAMPLES) gathered along the batch."""
    reduced = {
        k: strategy.reduce(SUM, v, axis=None) for k, v in per_replica.items() if k != EXAMPLES
    }
    if EXAMPLES in per_replica:
        reduced[EXAMPLES] = {
            k: strategy.gather(v, axis=0) for k, v in per_replica[EXAMPLES].items()
        }
    return reduced


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def _accumulate(totals: dict, sums: dict) -> None:
    for k, v in sums.items():
        totals[k] = totals[k] + v if k in totals else v


def _learning_rates(opts: dict) -> dict:
    rates = {}
    for name, opt in opts.items():
        tag = "learning_rate" if len(opts) == 1 else f"learning_rate/{name}"
        rates[tag] = float(keras.ops.convert_to_numpy(opt.learning_rate))
    return rates


def _save(run: _Run):
    run.step_var.assign(run.step)
    run.manager.save(checkpoint_number=run.step)


def save_model(model, path: pathlib.Path):
    tmp = path.with_name(f".{path.name}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _new_run_dir(logdir, recipe_name, chief) -> pathlib.Path:
    if not chief:
        return pathlib.Path(tempfile.mkdtemp(prefix="zoo-worker-"))
    return tooling.new_run_dir(logdir, recipe_name)


class Writers:
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

    def hparams(self, recipe, trial_id):
        """The run's hyperparameters for TensorBoard's HParams tab. No experiment config is
        written: with none, TensorBoard builds the table's columns from every run's own hparams
        and scalars, so runs of different recipes (and tasks) each fill their own columns."""
        flat = {
            k: v
            for k, v in _flatten(recipe).items()
            if k != "description" and isinstance(v, (bool, int, float, str))
        }
        with self.root.as_default():
            hp.hparams(flat, trial_id=trial_id)

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
def sigterm_flag():
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

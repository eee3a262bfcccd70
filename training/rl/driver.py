"""The reinforcement-learning driver: the environment is the data, the agent owns the steps, and
everything around them is the supervised loop's (training/loop.py): the run directory and
recipe.json, TensorBoard writers and HParams, checkpoints with `--resume`, SIGTERM (save, stop,
exit 143), NaN checks, model.keras, export_info.json and metrics.json, so `python -m serving
export` and every tool over a run directory take an RL run as they take any other.

    train(recipe)  =  check (environment, model, task, signatures; nothing written before)
                   -> epochs: agent iterations (acting in vectorised environments, updating)
                      until the epoch's share of total_timesteps, then `eval_episodes`
                      evaluation episodes with fixed seeds (deterministic actions), a rendered
                      rollout as an image strip, a checkpoint and model.keras
                   -> finish (calibration sample of observations, export_info.json, metrics.json)

TensorBoard, train/: episode_return and episode_length of the training episodes that ended,
each algorithm's losses (PPO: policy_loss, value_loss, entropy, approx_kl, clip_fraction,
explained_variance), steps_per_second; validation/: epoch_return (mean over the evaluation
episodes), epoch_return_std, epoch_length, and the image `rollout`. The step axis is
environment steps. Resume restores the networks, optimizers, the step and the best return; a
replay buffer is not checkpointed (DQN/DDPG refill theirs before updating again).

One device in float32: the networks are small and wait on the environments between updates, so
a recipe asking for another strategy or for float16/bfloat16 is refused before anything is written.
"""

import importlib
import json
import math
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

import console
import zoo
from training import loop, rl, tooling
from training.rl import envs as environments

PRECISIONS = (None, "auto", "float32")  # what an RL recipe may ask for: all train in float32


def train(recipe, *, logdir="runs", resume_dir=None, verbose=True) -> loop.RunResult:
    """Train an RL recipe; returns loop.RunResult. ValueError (environments.EnvError included)
    before anything is written; loop.TrainingError or loop.Interrupted after."""
    say = print if verbose else (lambda *a, **k: None)
    task = recipe["task"]
    algorithm = task["name"]
    unknown = sorted(set(task) - set(rl.ALGORITHMS[algorithm]) - {"name"})
    if unknown:
        raise ValueError(f"task {algorithm!r} has no setting {', '.join(map(repr, unknown))}")
    cfg = {**rl.ALGORITHMS[algorithm], **task}
    env_id = recipe["data"]["dataset"]
    environments.check(env_id)
    info = environments.describe(env_id)
    spec = zoo.get_spec(recipe["model"]["name"])
    if spec.task != "policy":
        raise ValueError(f"model {spec.name!r} is a {spec.task} model, not a policy network")
    zoo.check_signatures("policy", recipe["export"]["saved_model"]["signatures"])
    module = importlib.import_module(f"training.rl.{algorithm}")
    if info["action_space"]["type"] not in module.Agent.uses:
        raise ValueError(
            f"{algorithm} takes {' or '.join(module.Agent.uses)} actions; {env_id} has "
            f"{info['action_space']['type']} ones"
        )
    run = recipe["run"]
    if run["strategy"] not in ("auto", "one_device") or run["mixed_precision"] not in PRECISIONS:
        # the agents step small networks between environment steps on one device: nothing to
        # spread over replicas or to gain from float16, so asking for either is refused, not ignored
        raise ValueError(
            f"{algorithm} runs on one device in float32: run.strategy={run['strategy']!r} and "
            f"run.mixed_precision={run['mixed_precision']!r} are not supported for RL recipes"
        )
    if recipe["optimizer"]["name"] != "adam":
        raise ValueError(f"{algorithm} trains with adam, not {recipe['optimizer']['name']!r}")
    total, epochs = int(cfg["total_timesteps"]), int(recipe["train"]["epochs"])
    if total <= 0 or epochs <= 0 or int(cfg["eval_episodes"]) <= 0:
        raise ValueError("task.total_timesteps, train.epochs, task.eval_episodes must be > 0")
    seed = int(recipe["train"]["seed"])

    keras.utils.set_random_seed(seed)
    overrides = {"input_shape": tuple(info["observation_shape"]), **recipe["model"]["overrides"]}

    def build(name=spec.name, **extra):
        """A zoo network for the agent: the recipe's model, or another one (DDPG's critic) with
        the overrides it takes (hidden sizes, the input shape)."""
        kwargs = {**overrides, **extra}
        if name != spec.name:
            kwargs = {k: v for k, v in kwargs.items() if k in zoo.get_spec(name).arguments()}
        return zoo.build(name, tiny=recipe["run"]["tiny"], **kwargs)

    with console.quiet():
        agent = module.Agent(cfg, info, build, float(recipe["optimizer"]["lr"]), seed)
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    best_var = tf.Variable(-np.inf, dtype=tf.float64, trainable=False)
    checkpoint = tf.train.Checkpoint(
        model=agent.model, step=step_var, best_return=best_var, **agent.objects()
    )
    run_dir = (
        pathlib.Path(resume_dir) if resume_dir else tooling.new_run_dir(logdir, recipe["name"])
    )
    manager = tf.train.CheckpointManager(
        checkpoint,
        str(run_dir / "checkpoints"),
        max_to_keep=int(recipe["train"]["keep_checkpoints"]),
        step_counter=step_var,
    )
    if resume_dir:
        if not manager.latest_checkpoint:
            raise ValueError(f"nothing to resume in {run_dir}: it has no checkpoint")
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        say(f"resuming {run_dir} from {manager.latest_checkpoint}")
    (run_dir / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    writers = loop.Writers(run_dir, True)
    if not resume_dir:
        writers.hparams(recipe, f"{recipe['name']}/{run_dir.name}")
    step, started = int(step_var.numpy()), time.time()
    per_epoch = math.ceil(total / epochs)
    say(
        f"training {spec.name} with {algorithm} on {env_id} ({total} environment steps, "
        f"{epochs} epochs of {per_epoch}) -> {run_dir}"
    )
    metrics, observations = {}, None
    agent.start(step)
    try:
        with loop.sigterm_flag() as stop:
            while step < total:
                epoch = step // per_epoch
                end = min((epoch + 1) * per_epoch, total)
                epoch_started, window = time.time(), []
                while step < end:
                    tick = time.time()
                    count, scalars, returns, lengths = agent.iterate(step, total)
                    step += count
                    bad = [k for k, v in scalars.items() if not math.isfinite(v)]
                    if bad:
                        last = manager.latest_checkpoint or "none (no checkpoint was saved yet)"
                        raise loop.TrainingError(
                            f"{', '.join(bad)} became {scalars[bad[0]]} at step {step}: "
                            f"stopped. Last good checkpoint: {last}"
                        )
                    scalars["steps_per_second"] = count / max(time.time() - tick, 1e-9)
                    if returns:
                        scalars["episode_return"] = float(np.mean(returns))
                        scalars["episode_length"] = float(np.mean(lengths))
                        window += returns
                    writers.scalars("train", scalars, step)
                    if stop:
                        _save(manager, step_var, step)
                        raise loop.Interrupted(
                            f"SIGTERM at step {step}: checkpoint saved in {manager.directory}; "
                            "continue with --resume"
                        )
                metrics, observations = _evaluate(agent, cfg, env_id, writers, step)
                better = metrics["return"] >= float(best_var.numpy())
                if better:
                    best_var.assign(metrics["return"])
                metrics["best_return"] = float(best_var.numpy())
                writers.scalars("validation", {"epoch_best_return": metrics["best_return"]}, step)
                writers.flush()
                _save(manager, step_var, step)
                if better or not cfg["keep_best"] or not (run_dir / "model.keras").is_file():
                    loop.save_model(agent.model, run_dir / "model.keras")
                    np.savez_compressed(
                        run_dir / "calibration.npz",
                        representative=observations,
                        x_test=observations,
                    )
                train_return = f"{np.mean(window):.1f}" if window else "n/a"
                say(
                    f"epoch {epoch + 1}/{epochs}: step {step}, {time.time() - epoch_started:.1f}"
                    f" s; training episodes {train_return} | evaluation return "
                    f"{metrics['return']:.1f} +- {metrics['return_std']:.1f} (best "
                    f"{metrics['best_return']:.1f})"
                )
    finally:
        agent.close()
        writers.close()
    seconds = time.time() - started
    export_info = {
        "task": "policy",
        "algorithm": algorithm,
        "policy_output": agent.output,
        **info,
        "evaluation": {"episodes": int(cfg["eval_episodes"]), "seed": int(cfg["eval_seed"])},
    }
    (run_dir / "export_info.json").write_text(json.dumps(export_info, indent=2) + "\n")
    summary = {"steps": step, "seconds": round(seconds, 2), "validation": metrics}
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    shown = loop.format_metrics(metrics)
    say(f"done: {step} environment steps in {seconds:.1f} s; evaluation {shown}")
    return loop.RunResult(run_dir, step, metrics, agent.model, seconds, True)


def _evaluate(agent, cfg, env_id, writers, step):
    """The evaluation episodes (same seeds every epoch), logged; (metrics, observations seen)."""
    found = environments.evaluate(
        agent.act, env_id, int(cfg["eval_episodes"]), int(cfg["eval_seed"])
    )
    metrics = {
        "return": float(np.mean(found["returns"])),
        "return_std": float(np.std(found["returns"])),
        "length": float(np.mean(found["lengths"])),
    }
    writers.scalars("validation", {f"epoch_{k}": v for k, v in metrics.items()}, step)
    if int(cfg["rollout_frames"]) > 0:
        strip = environments.rollout_strip(
            agent.act, env_id, int(cfg["eval_seed"]), int(cfg["rollout_frames"])
        )
        if strip is not None:
            with writers.validation.as_default():
                tf.summary.image("rollout", strip[None], step=step)
    return metrics, found["observations"]


def _save(manager, step_var, step):
    step_var.assign(step)
    manager.save(checkpoint_number=step)

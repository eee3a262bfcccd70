"""Reinforcement learning (training/rl/, zoo/rl/, serving/signatures/policy.py) on gymnasium's
own simulators, offline: PPO raises CartPole's return within a few iterations, the driver keeps
the loop's run directory (checkpoints, SIGTERM and resume, TensorBoard), DQN and DDPG run their
updates, and the policy's export answers `act` like the trained model through TFLite, a real
embedded server (REST and gRPC) and `python -m training play`.
"""

import json
import os
import signal

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import run_module
from tests.serving.conftest import ServerProcess, grpc_stubs, http, predict_request
from training import cli, loop, recipes
from training.rl import driver, envs, play

pytest.importorskip("gymnasium")


def rl_recipe(name, *sets):
    return recipes.resolve(
        name, ['export.tflite.variants=["float32"]', "task.rollout_frames=4", *sets]
    )


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    """PPO on CartPole-v1 for 12 iterations of 4 x 128 steps (3 evaluations), then exported."""
    from serving import exporters

    root = tmp_path_factory.mktemp("ppo")
    recipe = rl_recipe(
        "ppo-cartpole",
        "task.total_timesteps=6144",
        "task.eval_episodes=5",
        "task.anneal_lr=false",
        "optimizer.lr=0.002",
        "train.epochs=3",
    )
    result = driver.train(recipe, logdir=root / "runs", verbose=False)
    written = exporters.export_run(result.run_dir, root / "exports", say=lambda *_: None)
    return result, root, written


def untrained_return(recipe, episodes, seed):
    """The mean return of the recipe's network as built, before any update."""
    import keras

    import zoo.rl  # noqa: F401

    keras.utils.set_random_seed(int(recipe["train"]["seed"]))
    model = zoo.build(recipe["model"]["name"], input_shape=(4,), num_actions=2)
    act = lambda obs: np.argmax(model(obs)["logits"].numpy(), -1)  # noqa: E731
    return float(np.mean(envs.evaluate(act, "CartPole-v1", episodes, seed)["returns"]))


def test_ppo_raises_cartpoles_return_and_logs_it(cartpole):
    result, _, _ = cartpole
    recipe = json.loads((result.run_dir / "recipe.json").read_text())
    before = untrained_return(recipe, 5, recipe["task"]["eval_seed"])
    assert result.metrics["best_return"] >= max(100.0, before + 50), (before, result.metrics)
    for name in ("model.keras", "export_info.json", "metrics.json", "calibration.npz"):
        assert (result.run_dir / name).is_file(), name
    train = EventAccumulator(str(result.run_dir / "train")).Reload()
    tags = set(train.Tags()["tensors"])
    wanted = {"episode_return", "episode_length", "policy_loss", "value_loss", "entropy"}
    assert wanted | {"explained_variance", "approx_kl"} <= tags, tags
    validation = EventAccumulator(str(result.run_dir / "validation")).Reload()
    returns = [tf.make_ndarray(e.tensor_proto) for e in validation.Tensors("epoch_return")]
    assert len(returns) == 3 and max(returns) == pytest.approx(result.metrics["best_return"])
    strips = validation.Tensors("rollout")  # one per evaluation: [width, height, PNG]
    assert len(strips) == 3 and tf.make_ndarray(strips[-1].tensor_proto)[2].startswith(b"\x89PNG")


def test_export_act_matches_the_model_and_its_tflite_conversion(cartpole):
    result, root, written = cartpole
    version = written["saved_model"]
    loaded = tf.saved_model.load(version)
    assert set(loaded.signatures) == {"serving_default", "act"}
    obs = np.load(result.run_dir / "calibration.npz")["x_test"][:64]
    import keras

    model = keras.saving.load_model(result.run_dir / "model.keras")
    expected = np.argmax(model(obs)["logits"].numpy(), -1)
    act = loaded.signatures["act"](observation=tf.constant(obs))
    np.testing.assert_array_equal(act["action"].numpy(), expected)
    served = loaded.signatures["serving_default"](observation=tf.constant(obs))
    assert set(served) == {"action", "logits", "value"}
    report = json.loads((root / "exports" / "ppo-cartpole" / "tflite" / "report.json").read_text())
    (row,) = report["variants"]
    assert row["variant"] == "float32" and row["max_abs_diff"] == 0.0, row  # the same actions


def test_act_answers_through_the_embedded_server(cartpole, tmp_path):
    _, root, written = cartpole
    loaded = tf.saved_model.load(written["saved_model"])
    obs = np.array([[0.0, 0.0, 0.05, 0.0], [0.0, 0.0, -0.05, 0.0], [0.1, 0.5, 0.0, -0.5]], "f4")
    expected = loaded.signatures["act"](observation=tf.constant(obs))["action"].numpy()
    proc = ServerProcess(root / "exports", log_path=tmp_path / "server.log")
    try:
        proc.wait_ready()
        url = f"{proc.url}/v1/models/ppo-cartpole:predict"
        status, doc = http("POST", url, {"signature_name": "act", "instances": obs.tolist()})
        assert status == 200, doc
        assert [p["action"] if isinstance(p, dict) else p for p in doc["predictions"]] == (
            expected.tolist()
        )
        status, doc = http("POST", url, {"signature_name": "act", "instances": [[1.0, 2.0]]})
        assert status == 400, doc
        channel, predict, _ = grpc_stubs(proc.grpc_target)
        with channel:
            reply = predict.Predict(
                predict_request("ppo-cartpole", "act", {"observation": obs}), timeout=30
            )
        np.testing.assert_array_equal(tf.make_ndarray(reply.outputs["action"]), expected)
    finally:
        proc.stop()


def test_play_reports_the_mean_return_of_the_export_and_the_run(cartpole, capsys):
    result, root, _ = cartpole
    recipe = json.loads((result.run_dir / "recipe.json").read_text())
    seed = str(recipe["task"]["eval_seed"])
    # the evaluation's episodes again: the kept (best) policy's return, exactly
    done = run_module(
        "training", "play", root / "exports" / "ppo-cartpole", "--episodes", "5", "--seed", seed
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["mean_return"] == pytest.approx(result.metrics["best_return"], abs=1e-6)
    assert report["episodes"] == 5 and report["env"] == "CartPole-v1"
    assert report["policy"].endswith("ppo-cartpole/1")  # the newest version
    assert play.main([str(result.run_dir), "--episodes", "5", "--seed", seed]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["mean_return"] == pytest.approx(result.metrics["best_return"], abs=1e-6)
    assert play.main([str(root / "runs")]) == 2
    assert "neither a finished run" in capsys.readouterr().err
    assert play.main([str(result.run_dir), "--episodes", "0"]) == 2


def test_sigterm_saves_and_resume_continues_dqn(tmp_path, monkeypatch):
    from training.rl import dqn

    recipe = rl_recipe(
        "dqn-cartpole",
        "run.tiny=true",
        "task.total_timesteps=1024",
        "task.learning_starts=256",
        "task.gradient_steps=8",
        "task.eval_episodes=2",
        "task.rollout_frames=0",
        "train.epochs=2",
    )
    iterate = dqn.Agent.iterate

    def stopped(self, step, total):  # SIGTERM arrives during the second iteration
        if step == 256:
            os.kill(os.getpid(), signal.SIGTERM)
        return iterate(self, step, total)

    monkeypatch.setattr(dqn.Agent, "iterate", stopped)
    with pytest.raises(loop.Interrupted, match="SIGTERM at step 512"):
        driver.train(recipe, logdir=tmp_path, verbose=False)
    monkeypatch.setattr(dqn.Agent, "iterate", iterate)
    run_dir = loop.find_resumable(tmp_path, "dqn-cartpole")
    assert run_dir is not None and not (run_dir / "model.keras").exists()
    result = driver.train(recipe, logdir=tmp_path, resume_dir=run_dir, verbose=False)
    assert result.run_dir == run_dir and result.steps == 1024
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 1024 and "loss" in set(
        EventAccumulator(str(run_dir / "train")).Reload().Tags()["tensors"]
    )


def test_ddpg_updates_its_actor_and_exports_actions_in_bounds(tmp_path):
    from serving import exporters

    recipe = rl_recipe(
        "ddpg-pendulum",
        "run.tiny=true",
        "task.total_timesteps=256",
        "task.learning_starts=128",
        "task.gradient_steps=4",
        "task.eval_episodes=2",
        "task.rollout_frames=0",
        "train.epochs=1",
        'export.formats=["saved_model"]',
    )
    result = driver.train(recipe, logdir=tmp_path / "runs", verbose=False)
    tags = set(EventAccumulator(str(result.run_dir / "train")).Reload().Tags()["tensors"])
    assert {"critic_loss", "actor_loss", "episode_return"} <= tags, tags
    written = exporters.export_run(result.run_dir, tmp_path / "exports", say=lambda *_: None)
    act = tf.saved_model.load(written["saved_model"]).signatures["act"]
    obs = np.random.default_rng(0).normal(0, 5, (16, 3)).astype("f4")
    action = act(observation=tf.constant(obs))["action"].numpy()
    assert action.shape == (16, 1) and np.all(np.abs(action) <= 2.0)


def test_bad_requests_exit_2_with_nothing_written(tmp_path, capsys):
    argv = ["train", "ppo-cartpole", "--dataset", "NoSuchEnv-v0", "--logdir", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "unknown environment 'NoSuchEnv-v0'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="ppo takes discrete actions; Pendulum-v1 has box"):
        driver.train(rl_recipe("ppo-cartpole", "data.dataset=Pendulum-v1"), logdir=tmp_path)
    with pytest.raises(ValueError, match="not a policy network"):
        driver.train(rl_recipe("ppo-cartpole", "model.name=cnn"), logdir=tmp_path)
    # a typo is refused too, not read as float32
    settings = ["run.strategy=mirrored", "run.mixed_precision=float16", "run.mixed_precision=fp32"]
    for setting in settings:
        with pytest.raises(ValueError, match="runs on one device in float32"):
            driver.train(rl_recipe("dqn-cartpole", setting), logdir=tmp_path)
    argv = ["train", "ppo-cartpole", "--strategy", "multi_worker", "--logdir", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "run.strategy='multi_worker'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_every_rl_network_registers_a_tiny_policy_model():
    import zoo.rl  # noqa: F401

    names = ["actor_critic_mlp", "q_mlp", "deterministic_actor_mlp", "q_critic_mlp"]
    for name in names:
        spec = zoo.get_spec(name)
        assert spec.task == "policy" and spec.tiny, name

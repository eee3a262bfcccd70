"""Reinforcement-learning recipes: gymnasium environments (offline: they are simulators), agents
in Keras 3 (training/rl/), exported as policies (`act`: observation -> action).
`python -m training train ppo-cartpole`, then `python -m training play exports/ppo-cartpole`.

The data set is the environment's id; train.epochs is how many times the policy is evaluated
(task.eval_episodes episodes with fixed seeds) over task.total_timesteps environment steps; the
export is the best evaluated policy (task.keep_best).

Measured 2026-12-02 on a 2-core CPU shared with other jobs (`nice -n 10 /usr/bin/time -v python
-m training train <recipe>`, export and TFLite included; then `python -m training play
exports/<recipe> --episodes 100`, seeds 0-99, which the evaluations during training never use):
- ppo-cartpole: 497.3 +- 19.4 over 100 episodes (target 475); 90 CPU s, 3:01 wall. Evaluation
  (10 episodes) every 10k steps: 469 316 476 422 474 500 487 466 473 487 ... 500 at 200k.
- dqn-cartpole: 500.0 +- 0 (the policy kept at 44k steps); 97 CPU s, 7:01 wall. DQN is
  unstable here: evaluations every 2k steps go 82 ... 253, 500 (28k-34k), 127, 17, 19, 120, 500
  (44k), 92, 137, 35 at the end: keep_best is what makes its export good.
- ddpg-pendulum: -140.5 +- 79.4 (RL Baselines3 Zoo's DDPG: about -150); 94 CPU s, 3:16 wall.
- ppo-lunarlander: 259.8 +- 33.8 (target 200); 246 CPU s, 10:24 wall. Evaluations every 50k
  steps: -158 -222 -187 -197 -168 -35 -25 3 134 141 196 204 219 232 238 240 251 250 257 262.
  With CleanRL's clipped value loss (task.clip_vloss=true) it reached 186 (174 over 100
  episodes) in 280 CPU s: returns in the hundreds, value steps clipped to 0.2 learn slowly.
"""

from training.recipes import add
from training.rl import ALGORITHMS

POLICY_EXPORT = {
    "formats": ["saved_model", "tflite"],
    # an action out of argmax is an integer: no full-integer (int8) variant
    "tflite": {"variants": ["float32", "float16", "dynamic"]},
}

add(
    "ppo-cartpole",
    description="PPO (CleanRL's settings) on CartPole-v1: 4 environments, 128 steps each per "
    "update, GAE, clipped surrogate; target: mean return >= 475.",
    model={"name": "actor_critic_mlp"},
    data={"dataset": "CartPole-v1"},
    task={**ALGORITHMS["ppo"], "name": "ppo", "total_timesteps": 200_000},
    optimizer={"name": "adam", "lr": 2.5e-4},
    train={"epochs": 20, "seed": 1},
    export=POLICY_EXPORT,
)
add(
    "dqn-cartpole",
    description="Double DQN with a target network and replay (RL Baselines3 Zoo's schedule) on "
    "CartPole-v1; target: mean return >= 475.",
    model={"name": "q_mlp"},
    data={"dataset": "CartPole-v1"},
    task={**ALGORITHMS["dqn"], "name": "dqn", "total_timesteps": 50_000},
    optimizer={"name": "adam", "lr": 2.3e-3},
    train={"epochs": 25, "seed": 1},
    export=POLICY_EXPORT,
)
add(
    "ppo-lunarlander",
    description="PPO on LunarLander-v3 (box2d) with RL Baselines3 Zoo's settings: 16 "
    "environments of 1,024 steps, gamma 0.999, GAE 0.98; target: mean return >= 200.",
    model={"name": "actor_critic_mlp"},
    data={"dataset": "LunarLander-v3"},
    task={
        **ALGORITHMS["ppo"],
        "name": "ppo",
        "total_timesteps": 1_000_000,
        "num_envs": 16,
        "num_steps": 1024,
        "num_minibatches": 256,  # minibatches of 64
        "gamma": 0.999,
        "gae_lambda": 0.98,
        "anneal_lr": False,
        "clip_vloss": False,  # as SB3: returns in the hundreds, a value step clipped to 0.2 crawls
    },
    optimizer={"name": "adam", "lr": 3e-4},
    train={"epochs": 20, "seed": 1},
    export=POLICY_EXPORT,
)
add(
    "ddpg-pendulum",
    description="DDPG on Pendulum-v1 (continuous torque): Gaussian exploration, soft target "
    "updates, delayed actor updates.",
    model={
        "name": "deterministic_actor_mlp",
        "overrides": {"action_low": -2.0, "action_high": 2.0},
    },
    data={"dataset": "Pendulum-v1"},
    task={**ALGORITHMS["ddpg"], "name": "ddpg", "total_timesteps": 20_000},
    optimizer={"name": "adam", "lr": 1e-3},
    train={"epochs": 10, "seed": 1},
    export=POLICY_EXPORT,
)

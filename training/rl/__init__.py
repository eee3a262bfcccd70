"""Reinforcement learning beside the supervised loop: gymnasium environments are the data.

A recipe whose task is one of ALGORITHMS (training/recipe_book/rl.py) is trained by
`driver.train`, which `python -m training train` calls instead of `loop.train`; `python -m
training play <run-or-export>` plays a trained policy (play.py). This module is light (no
TensorFlow, no gymnasium): recipes read the settings below from it.
"""

# What every algorithm's task section holds (the driver fills what a recipe leaves out):
COMMON = {
    "total_timesteps": 100_000,  # environment steps, over all vector environments
    "eval_episodes": 10,  # evaluation episodes after each epoch, episode i seeded eval_seed + i
    "eval_seed": 10_000,
    "keep_best": True,  # model.keras (what is exported) is the best evaluated policy so far
    "rollout_frames": 8,  # frames of one rendered evaluation episode in TensorBoard (0: none)
}
# task name -> its settings (the agent is training/rl/<name>.py's Agent)
ALGORITHMS = {
    # CleanRL ppo.py's defaults (Atari-free, classic control)
    "ppo": {
        **COMMON,
        "num_envs": 4,
        "num_steps": 128,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "update_epochs": 4,
        "num_minibatches": 4,
        "clip_coef": 0.2,
        "clip_vloss": True,
        "ent_coef": 0.01,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "norm_adv": True,
        "anneal_lr": True,
        "adam_epsilon": 1e-5,
    },
    # double DQN; the update schedule of RL Baselines3 Zoo's CartPole DQN
    "dqn": {
        **COMMON,
        "num_envs": 1,
        "buffer_size": 100_000,
        "batch_size": 64,
        "gamma": 0.99,
        "learning_starts": 1_000,
        "train_frequency": 256,  # environment steps between updates
        "gradient_steps": 128,  # updates each time
        "target_update_steps": 10,  # environment steps between target-network copies
        "exploration_fraction": 0.16,  # of total_timesteps, epsilon from 1 down to final_eps
        "final_eps": 0.04,
        "double": True,
        "max_grad_norm": 10.0,
    },
    # DDPG (CleanRL ddpg_continuous_action.py) with the update schedule of RL Baselines3 Zoo
    "ddpg": {
        **COMMON,
        "num_envs": 1,
        "buffer_size": 200_000,
        "batch_size": 256,
        "gamma": 0.99,
        "tau": 0.005,
        "learning_starts": 1_000,
        "train_frequency": 64,
        "gradient_steps": 64,
        "policy_delay": 2,  # actor and target updates every this many critic updates
        "exploration_noise": 0.1,  # Gaussian, times half the action range
        "critic_lr": 1e-3,
    },
}


def trains(recipe: dict) -> bool:
    """Whether `recipe` is a reinforcement-learning recipe (its task is an algorithm here)."""
    return recipe.get("task", {}).get("name") in ALGORITHMS

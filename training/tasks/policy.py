"""Reinforcement-learning tasks (ppo, dqn, ddpg): their exports are policies (task kind `policy`).

The environment is their data, so the supervised loop does not run them: `python -m training
train` hands a recipe whose task is one of these to training/rl/driver.py, which owns the
environment interaction and shares the loop's run directory, checkpoints, resume, SIGTERM and
TensorBoard. These records make the algorithms known by name beside the other tasks.
"""

from training.tasks.base import Task


class _Reinforcement(Task):
    kind = "policy"
    name = "base"  # not registered itself

    def preprocess(self, example):
        raise NotImplementedError(f"{self.name} trains on an environment: see training/rl/")

    def train_step(self, model, optimizers, batch, global_batch_size):
        raise NotImplementedError(f"{self.name} trains on an environment: see training/rl/")

    eval_step = train_step


class PPO(_Reinforcement):
    name = "ppo"


class DQN(_Reinforcement):
    name = "dqn"


class DDPG(_Reinforcement):
    name = "ddpg"

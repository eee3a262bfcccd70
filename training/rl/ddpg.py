"""DDPG (Lillicrap et al. 2016) for continuous actions: a deterministic actor, a critic
Q(observation, action), their target copies updated softly (tau), Gaussian exploration noise on
the actor's action (times half the action range), a replay buffer. Every `train_frequency`
environment steps, `gradient_steps` critic updates, the actor and the targets every
`policy_delay`-th of them (TD3's delay; CleanRL's DDPG does the same); all of them one compiled
tf.function. Written here for the reasons in ppo.py's docstring.
"""

import keras
import numpy as np
import tensorflow as tf

from training.rl import envs as environments
from training.rl.dqn import Replay


class Agent:
    uses = ("box",)

    def __init__(self, cfg, info, build, lr, seed):
        self.cfg, self.info, self.seed = cfg, info, seed
        space = info["action_space"]
        self.low, self.high = np.array(space["low"]), np.array(space["high"])
        dim = int(space["shape"][0])
        self.model = build(action_dim=dim)
        self.target_actor = build(action_dim=dim)
        self.critic = build("q_critic_mlp", action_dim=dim)
        self.target_critic = build("q_critic_mlp", action_dim=dim)
        self.target_actor.set_weights(self.model.get_weights())
        self.target_critic.set_weights(self.critic.get_weights())
        self.actor_opt = keras.optimizers.Adam(lr)
        self.critic_opt = keras.optimizers.Adam(float(cfg["critic_lr"]))
        self.actor_opt.build(self.model.trainable_variables)
        self.critic_opt.build(self.critic.trainable_variables)
        self.output = "action"
        spec = tf.TensorSpec([None, *info["observation_shape"]], tf.float32)
        self._forward = tf.function(
            lambda obs: self.model(obs, training=False)["action"], input_signature=[spec]
        )
        self._update = tf.function(self._update_fn)

    def objects(self) -> dict:
        return {
            "actor_optimizer": self.actor_opt,
            "critic_optimizer": self.critic_opt,
            "critic": self.critic,
            "target_actor": self.target_actor,
            "target_critic": self.target_critic,
        }

    def start(self, step):
        n = int(self.cfg["num_envs"])
        self.envs, self.obs = environments.vector(self.info["env"], n, self.seed + step)
        self.rng = np.random.default_rng([self.seed, step])
        dim = self.info["action_space"]["shape"]
        self.buffer = Replay(
            int(self.cfg["buffer_size"]), self.info["observation_shape"], dim, np.float32
        )
        self.resumed_at = step

    def close(self):
        self.envs.close()

    def act(self, obs):
        return self._forward(obs).numpy()

    def iterate(self, step, total):
        cfg = self.cfg
        n = int(cfg["num_envs"])
        rounds = max(1, int(cfg["train_frequency"]) // n)
        returns, lengths = [], []
        scale = float(cfg["exploration_noise"]) * (self.high - self.low) / 2.0
        warmup = step - self.resumed_at < int(cfg["learning_starts"])
        for _ in range(rounds):
            if warmup:  # uniform random actions until learning starts
                actions = self.rng.uniform(self.low, self.high, (n, len(self.low)))
            else:
                actions = self.act(self.obs.astype(np.float32))
                actions = actions + self.rng.normal(0.0, 1.0, actions.shape) * scale
            actions = np.clip(actions, self.low, self.high).astype(np.float32)
            obs, reward, terminated, truncated, info = self.envs.step(actions)
            following = environments.next_observations(obs, info)
            self.buffer.add(self.obs, actions, reward, following, terminated)
            self.obs = obs
            r, l_ = environments.finished(info)
            returns += r
            lengths += l_
        count = rounds * n
        scalars = {"buffer_size": float(len(self.buffer))}
        if step + count - self.resumed_at >= int(cfg["learning_starts"]):
            g, b = int(cfg["gradient_steps"]), int(cfg["batch_size"])
            critic_loss, actor_loss, q = self._update(*self.buffer.sample(self.rng, g, b))
            scalars.update(critic_loss=float(critic_loss), actor_loss=float(actor_loss))
            scalars["q_mean"] = float(q)
        return count, scalars, returns, lengths

    def _update_fn(self, obs, actions, rewards, next_obs, terminated):
        gamma, tau = float(self.cfg["gamma"]), float(self.cfg["tau"])
        delay = int(self.cfg["policy_delay"])
        totals = tf.zeros([3])
        actor_count = tf.constant(0.0)
        for i in tf.range(tf.shape(obs)[0]):
            next_action = self.target_actor(next_obs[i], training=False)["action"]
            next_q = self.target_critic(
                {"observation": next_obs[i], "action": next_action}, training=False
            )["q_value"]
            target = tf.stop_gradient(rewards[i] + gamma * (1.0 - terminated[i]) * next_q)
            with tf.GradientTape() as tape:
                q = self.critic({"observation": obs[i], "action": actions[i]}, training=True)
                critic_loss = tf.reduce_mean(tf.square(q["q_value"] - target))
            variables = self.critic.trainable_variables
            self.critic_opt.apply(tape.gradient(critic_loss, variables), variables)
            actor_loss = tf.constant(0.0)
            if i % delay == 0:
                with tf.GradientTape() as tape:
                    action = self.model(obs[i], training=True)["action"]
                    value = self.critic({"observation": obs[i], "action": action})["q_value"]
                    actor_loss = -tf.reduce_mean(value)
                variables = self.model.trainable_variables
                self.actor_opt.apply(tape.gradient(actor_loss, variables), variables)
                for net, target_net in (
                    (self.model, self.target_actor),
                    (self.critic, self.target_critic),
                ):
                    for w, t in zip(net.weights, target_net.weights, strict=True):
                        t.assign(tau * w + (1.0 - tau) * t)
                actor_count += 1.0
            totals += tf.stack([critic_loss, actor_loss, tf.reduce_mean(q["q_value"])])
        steps = tf.cast(tf.shape(obs)[0], tf.float32)
        return totals[0] / steps, totals[1] / tf.maximum(actor_count, 1.0), totals[2] / steps

"""Double DQN (Mnih et al. 2015; van Hasselt et al. 2016) with a target network and a replay
buffer, epsilon-greedy exploration annealed linearly: every `train_frequency` environment steps,
`gradient_steps` updates of the Huber loss on minibatches drawn uniformly from the buffer (all of
them one compiled tf.function); the target network is copied from the online one every
`target_update_steps` environment steps. With `double`, the online network picks the next action
and the target network values it. Written here for the reasons in ppo.py's docstring.
"""

import keras
import numpy as np
import tensorflow as tf

from training.rl import envs as environments


class Agent:
    uses = ("discrete",)

    def __init__(self, cfg, info, build, lr, seed):
        self.cfg, self.info, self.seed = cfg, info, seed
        n_actions = info["action_space"]["n"]
        self.model = build(num_actions=n_actions)
        self.target = build(num_actions=n_actions)
        self.target.set_weights(self.model.get_weights())
        self.optimizer = keras.optimizers.Adam(lr, global_clipnorm=float(cfg["max_grad_norm"]))
        self.optimizer.build(self.model.trainable_variables)
        self.output = "q_values"
        spec = tf.TensorSpec([None, *info["observation_shape"]], tf.float32)
        self._forward = tf.function(
            lambda obs: self.model(obs, training=False)["q_values"], input_signature=[spec]
        )
        self._update = tf.function(self._update_fn)

    def objects(self) -> dict:
        return {"optimizer": self.optimizer, "target": self.target}

    def start(self, step):
        n = int(self.cfg["num_envs"])
        self.envs, self.obs = environments.vector(self.info["env"], n, self.seed + step)
        self.rng = np.random.default_rng([self.seed, step])
        self.buffer = Replay(int(self.cfg["buffer_size"]), self.info["observation_shape"], ())
        self.resumed_at = step  # the buffer starts empty, on resume too

    def close(self):
        self.envs.close()

    def act(self, obs):
        return np.argmax(self._forward(obs).numpy(), axis=-1)

    def epsilon(self, step, total):
        span = max(1.0, float(self.cfg["exploration_fraction"]) * total)
        final = float(self.cfg["final_eps"])
        return max(final, 1.0 - (1.0 - final) * step / span)

    def iterate(self, step, total):
        cfg = self.cfg
        n = int(cfg["num_envs"])
        rounds = max(1, int(cfg["train_frequency"]) // n)
        returns, lengths = [], []
        n_actions = self.info["action_space"]["n"]
        for i in range(rounds):
            eps = self.epsilon(step + i * n, total)
            actions = self.act(self.obs.astype(np.float32))
            explore = self.rng.random(n) < eps
            actions = np.where(explore, self.rng.integers(0, n_actions, n), actions)
            obs, reward, terminated, truncated, info = self.envs.step(actions)
            following = environments.next_observations(obs, info)
            self.buffer.add(self.obs, actions, reward, following, terminated)
            self.obs = obs
            r, l_ = environments.finished(info)
            returns += r
            lengths += l_
        count = rounds * n
        scalars = {"epsilon": eps, "buffer_size": float(len(self.buffer))}
        started = step + count - self.resumed_at >= int(cfg["learning_starts"])
        if started:
            g, b = int(cfg["gradient_steps"]), int(cfg["batch_size"])
            batch = self.buffer.sample(self.rng, g, b)
            loss, q = self._update(*batch)
            scalars.update(loss=float(loss), q_mean=float(q))
        every = int(cfg["target_update_steps"])
        if started and (step + count) // every > step // every:
            self.target.set_weights(self.model.get_weights())
        return count, scalars, returns, lengths

    def _update_fn(self, obs, actions, rewards, next_obs, terminated):
        gamma, double = float(self.cfg["gamma"]), bool(self.cfg["double"])
        variables = self.model.trainable_variables
        totals = tf.zeros([2])
        for i in tf.range(tf.shape(obs)[0]):
            next_q = self.target(next_obs[i], training=False)["q_values"]
            if double:
                pick = tf.argmax(self.model(next_obs[i], training=False)["q_values"], axis=-1)
                next_value = tf.gather(next_q, pick, batch_dims=1)
            else:
                next_value = tf.reduce_max(next_q, axis=-1)
            target = rewards[i] + gamma * (1.0 - terminated[i]) * next_value
            target = tf.stop_gradient(target)
            with tf.GradientTape() as tape:
                q_all = self.model(obs[i], training=True)["q_values"]
                q = tf.gather(q_all, actions[i], batch_dims=1)
                loss = tf.reduce_mean(tf.keras.losses.huber(target[:, None], q[:, None]))
            grads = tape.gradient(loss, variables)
            self.optimizer.apply(grads, variables)
            totals += tf.stack([loss, tf.reduce_mean(q)])
        totals /= tf.cast(tf.shape(obs)[0], tf.float32)
        return totals[0], totals[1]


class Replay:
    """A ring buffer of transitions; `sample` draws [gradient_steps, batch] of them uniformly."""

    def __init__(self, capacity, obs_shape, action_shape, action_dtype=np.int64):
        self.capacity, self.size, self.next = capacity, 0, 0
        self.obs = np.zeros((capacity, *obs_shape), np.float32)
        self.next_obs = np.zeros((capacity, *obs_shape), np.float32)
        self.actions = np.zeros((capacity, *action_shape), action_dtype)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)

    def __len__(self):
        return self.size

    def add(self, obs, actions, rewards, next_obs, terminated):
        for i in range(len(obs)):
            j = self.next
            self.obs[j], self.actions[j], self.rewards[j] = obs[i], actions[i], rewards[i]
            self.next_obs[j], self.terminated[j] = next_obs[i], float(terminated[i])
            self.next = (j + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, rng, steps, batch):
        idx = rng.integers(0, self.size, (steps, batch))
        return (
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.terminated[idx],
        )

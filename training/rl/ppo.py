"""PPO (Schulman et al. 2017) for discrete actions, as CleanRL's ppo.py does it: vectorised
environments, `num_steps` steps of each per iteration, GAE(lambda) advantages, then
`update_epochs` passes over the batch in `num_minibatches` shuffled minibatches of the clipped
surrogate, a clipped value loss and an entropy bonus; advantages normalised per minibatch, the
gradient clipped by global norm, the learning rate annealed linearly to 0 over the run.

Written here rather than taken from a library: Stable-Baselines3 and CleanRL are PyTorch (or
JAX), TF-Agents does not run on Keras 3. The update (every epoch and minibatch of an iteration)
is one compiled tf.function; acting is one compiled call per vector step, sampling in numpy.
"""

import keras
import numpy as np
import tensorflow as tf

from training.rl import envs as environments


class Agent:
    uses = ("discrete",)

    def __init__(self, cfg, info, build, lr, seed):
        self.cfg, self.info, self.seed, self.lr = cfg, info, seed, float(lr)
        self.model = build(num_actions=info["action_space"]["n"])
        self.optimizer = keras.optimizers.Adam(
            lr, epsilon=float(cfg["adam_epsilon"]), global_clipnorm=float(cfg["max_grad_norm"])
        )
        self.optimizer.build(self.model.trainable_variables)
        self.output = "logits"
        self.batch = int(cfg["num_envs"]) * int(cfg["num_steps"])
        self._forward = tf.function(
            lambda obs: self.model(obs, training=False),
            input_signature=[tf.TensorSpec([None, *info["observation_shape"]], tf.float32)],
        )
        self._update = tf.function(self._update_fn)

    def objects(self) -> dict:
        return {"optimizer": self.optimizer}

    def start(self, step):
        n = int(self.cfg["num_envs"])
        self.envs, self.obs = environments.vector(self.info["env"], n, self.seed + step)
        self.rng = np.random.default_rng([self.seed, step])

    def close(self):
        self.envs.close()

    def act(self, obs):
        return np.argmax(self._forward(obs)["logits"].numpy(), axis=-1)

    def iterate(self, step, total):
        cfg = self.cfg
        n, t_max = int(cfg["num_envs"]), int(cfg["num_steps"])
        shape = self.info["observation_shape"]
        obs_buf = np.zeros((t_max, n, *shape), np.float32)
        actions = np.zeros((t_max, n), np.int64)
        logprobs = np.zeros((t_max, n), np.float32)
        rewards = np.zeros((t_max, n), np.float32)
        dones = np.zeros((t_max, n), np.float32)  # the episode ended before this step's obs
        values = np.zeros((t_max + 1, n), np.float32)
        bootstrap = np.zeros((t_max, n), np.float32)  # value of a truncated episode's last obs
        done_now = getattr(self, "_done", np.zeros(n, np.float32))
        returns, lengths = [], []
        for t in range(t_max):
            obs = self.obs.astype(np.float32)
            out = self._forward(obs)
            logits, value = out["logits"].numpy(), out["value"].numpy()
            probs = _softmax(logits)
            u = self.rng.random((n, 1))
            action = np.minimum((u > np.cumsum(probs, -1)).sum(-1), probs.shape[-1] - 1)
            obs_buf[t], actions[t], values[t], dones[t] = obs, action, value, done_now
            logprobs[t] = np.log(probs[np.arange(n), action] + 1e-12)
            self.obs, reward, terminated, truncated, step_info = self.envs.step(action)
            rewards[t] = reward
            cut = truncated & ~terminated
            if cut.any():  # a time limit, not a failure: the value of where it stopped
                last = environments.next_observations(self.obs, step_info)[cut]
                bootstrap[t, cut] = self._forward(last.astype(np.float32))["value"].numpy()
            done_now = (terminated | truncated).astype(np.float32)
            r, l_ = environments.finished(step_info)
            returns += r
            lengths += l_
        self._done = done_now
        values[t_max] = self._forward(self.obs.astype(np.float32))["value"].numpy()
        rewards = rewards + float(cfg["gamma"]) * bootstrap
        advantages = _gae(
            rewards, values, dones, done_now, float(cfg["gamma"]), float(cfg["gae_lambda"])
        )
        targets = advantages + values[:-1]

        if cfg["anneal_lr"]:
            self.optimizer.learning_rate.assign(self.lr * max(0.0, 1.0 - step / total))
        b = self.batch
        order = np.stack([self.rng.permutation(b) for _ in range(int(cfg["update_epochs"]))])
        stats = self._update(
            obs_buf.reshape(b, *shape),
            actions.reshape(b),
            logprobs.reshape(b),
            advantages.reshape(b),
            targets.reshape(b),
            values[:-1].reshape(b),
            tf.constant(order.reshape(-1, b // int(cfg["num_minibatches"])), tf.int32),
        )
        scalars = {k: float(v) for k, v in stats.items()}
        flat_v, flat_r = values[:-1].reshape(-1), targets.reshape(-1)
        var = np.var(flat_r)
        scalars["explained_variance"] = float(1 - np.var(flat_r - flat_v) / var) if var else 0.0
        scalars["learning_rate"] = float(self.optimizer.learning_rate.numpy())
        return b, scalars, returns, lengths

    def _update_fn(self, obs, actions, old_logprobs, advantages, targets, old_values, batches):
        cfg = self.cfg
        clip, ent_coef, vf_coef = float(cfg["clip_coef"]), float(cfg["ent_coef"]), cfg["vf_coef"]
        variables = self.model.trainable_variables
        names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
        sums = tf.zeros([len(names)])
        for i in tf.range(tf.shape(batches)[0]):
            idx = batches[i]
            mb_adv = tf.gather(advantages, idx)
            if cfg["norm_adv"]:
                mb_adv = (mb_adv - tf.reduce_mean(mb_adv)) / (tf.math.reduce_std(mb_adv) + 1e-8)
            mb_targets, mb_old_v = tf.gather(targets, idx), tf.gather(old_values, idx)
            with tf.GradientTape() as tape:
                out = self.model(tf.gather(obs, idx), training=True)
                log_all = tf.nn.log_softmax(out["logits"])
                logp = tf.gather(log_all, tf.gather(actions, idx), batch_dims=1)
                log_ratio = logp - tf.gather(old_logprobs, idx)
                ratio = tf.exp(log_ratio)
                pg = tf.reduce_mean(
                    tf.maximum(
                        -mb_adv * ratio, -mb_adv * tf.clip_by_value(ratio, 1 - clip, 1 + clip)
                    )
                )
                v = out["value"]
                if cfg["clip_vloss"]:
                    v_clipped = mb_old_v + tf.clip_by_value(v - mb_old_v, -clip, clip)
                    v_loss = 0.5 * tf.reduce_mean(
                        tf.maximum(tf.square(v - mb_targets), tf.square(v_clipped - mb_targets))
                    )
                else:
                    v_loss = 0.5 * tf.reduce_mean(tf.square(v - mb_targets))
                entropy = -tf.reduce_mean(tf.reduce_sum(tf.exp(log_all) * log_all, -1))
                loss = pg - ent_coef * entropy + float(vf_coef) * v_loss
            grads = tape.gradient(loss, variables)
            self.optimizer.apply(grads, variables)
            kl = tf.reduce_mean((ratio - 1) - log_ratio)
            clipped = tf.reduce_mean(tf.cast(tf.abs(ratio - 1) > clip, tf.float32))
            sums += tf.stack([pg, v_loss, entropy, kl, clipped])
        sums /= tf.cast(tf.shape(batches)[0], tf.float32)
        return {k: sums[i] for i, k in enumerate(names)}


def _softmax(logits):
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _gae(rewards, values, dones, last_done, gamma, lam):
    """Advantages by GAE(lambda); `dones[t]` marks that obs t began a new episode."""
    t_max = len(rewards)
    advantages = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1], np.float32)
    for t in reversed(range(t_max)):
        next_nonterminal = 1.0 - (last_done if t == t_max - 1 else dones[t + 1])
        delta = rewards[t] + gamma * values[t + 1] * next_nonterminal - values[t]
        running = delta + gamma * lam * next_nonterminal * running
        advantages[t] = running
    return advantages

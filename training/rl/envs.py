"""Gymnasium environments for the agents: vectorised training environments, what the networks
need to know about a space, and evaluation episodes with fixed seeds (optionally rendered).

The vector environments reset an ended episode in the same step (gymnasium's SAME_STEP
autoreset): the observation returned is the new episode's first one, and the ended episode's last
observation is in `info["final_obs"]` (the agents bootstrap from it when an episode is cut by a
time limit, not ended by the environment).
"""

import os

import numpy as np


class EnvError(ValueError):
    """A bad environment request: an unknown id, a space an agent cannot handle."""


def gym():
    try:
        import gymnasium
    except ImportError:  # pragma: no cover - it is in requirements.txt
        raise EnvError(
            "reinforcement learning needs gymnasium: pip install -r requirements.txt"
        ) from None
    return gymnasium


def check(env_id: str) -> None:
    """EnvError unless `env_id` is a registered environment that can be made here."""
    g = gym()
    try:
        g.spec(env_id)
    except g.error.Error as e:
        raise EnvError(f"unknown environment {env_id!r}: {e}") from None
    try:
        g.make(env_id).close()
    except g.error.DependencyNotInstalled as e:
        raise EnvError(f"environment {env_id!r} cannot be made here: {e}") from None


def describe(env_id: str) -> dict:
    """The observation shape and action space of `env_id`, as export_info.json records them."""
    g = gym()
    env = g.make(env_id)
    try:
        obs, act = env.observation_space, env.action_space
        if not isinstance(obs, g.spaces.Box):
            raise EnvError(f"{env_id}: observations must be a Box, not {obs}")
        if isinstance(act, g.spaces.Discrete):
            space = {"type": "discrete", "n": int(act.n)}
        elif isinstance(act, g.spaces.Box) and len(act.shape) == 1:
            space = {
                "type": "box",
                "shape": list(act.shape),
                "low": act.low.astype(float).tolist(),
                "high": act.high.astype(float).tolist(),
            }
        else:
            raise EnvError(f"{env_id}: unsupported action space {act}")
        return {
            "env": env_id,
            "observation_shape": list(obs.shape),
            "action_space": space,
            "max_episode_steps": env.spec.max_episode_steps,
        }
    finally:
        env.close()


def vector(env_id: str, count: int, seed: int):
    """`count` copies of the environment, stepped together, each recording its episodes'
    return and length; reset with seeds seed, seed + 1, ... Returns (envs, first observations)."""
    g = gym()

    def make():
        return g.wrappers.RecordEpisodeStatistics(g.make(env_id))

    envs = g.vector.SyncVectorEnv(
        [make for _ in range(count)], autoreset_mode=g.vector.AutoresetMode.SAME_STEP
    )
    obs, _ = envs.reset(seed=[seed + i for i in range(count)])
    return envs, obs


def finished(info) -> tuple[list, list]:
    """(returns, lengths) of the episodes that ended in this vector step."""
    final = info.get("final_info")
    if not final or "episode" not in final:
        return [], []
    mask = final["_episode"]
    return (
        final["episode"]["r"][mask].astype(float).tolist(),
        final["episode"]["l"][mask].astype(int).tolist(),
    )


def next_observations(obs, info):
    """The observations that followed this step's actions: the final one where an episode ended
    (the returned `obs` is already the next episode's first there)."""
    if "final_obs" not in info:
        return obs
    following = obs.copy()
    for i in np.flatnonzero(info["_final_obs"]):
        following[i] = info["final_obs"][i]
    return following


def evaluate(act, env_id: str, episodes: int, seed: int, keep_observations=256) -> dict:
    """`episodes` episodes played together by `act` (observations [N,...] -> actions [N]),
    episode i reset with seed + i: their returns and lengths, and a sample of the observations
    seen (for TFLite calibration)."""
    g = gym()
    envs = g.vector.SyncVectorEnv(
        [lambda: g.make(env_id) for _ in range(episodes)],
        autoreset_mode=g.vector.AutoresetMode.SAME_STEP,
    )
    try:
        obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, np.int64)
        running = np.ones(episodes, bool)
        seen = []
        while running.any():
            if len(seen) * episodes < keep_observations * 4:
                seen.append(obs[running].copy())
            actions = act(obs.astype(np.float32))
            obs, reward, terminated, truncated, _ = envs.step(actions)
            returns += np.where(running, reward, 0.0)
            lengths += running
            running &= ~(terminated | truncated)
    finally:
        envs.close()
    sample = np.concatenate(seen).astype(np.float32)
    sample = sample[np.random.default_rng(seed).permutation(len(sample))[:keep_observations]]
    return {"returns": returns, "lengths": lengths, "observations": sample}


def rollout_strip(act, env_id: str, seed: int, frames=8, height=96):
    """One episode rendered: `frames` frames evenly spread over it, side by side, as a uint8
    image [height, W, 3]; None where the environment cannot render here."""
    g = gym()
    for driver in ("SDL_VIDEODRIVER", "SDL_AUDIODRIVER"):  # pygame draws off screen, silently
        os.environ.setdefault(driver, "dummy")
    try:
        env = g.make(env_id, render_mode="rgb_array")
    except Exception:  # e.g. no pygame: the run goes on without pictures
        return None
    try:
        obs, _ = env.reset(seed=seed)
        pictures, done = [env.render()], False
        limit = env.spec.max_episode_steps or 1000
        every = max(1, limit // (frames * 2))
        step = 0
        while not done:
            action = act(obs[None].astype(np.float32))[0]
            obs, _, terminated, truncated, _ = env.step(action)
            done, step = terminated or truncated, step + 1
            if step % every == 0 or done:
                pictures.append(env.render())
    except Exception:
        return None
    finally:
        env.close()
    picked = [pictures[int(i)] for i in np.linspace(0, len(pictures) - 1, frames)]
    from PIL import Image

    resized = []
    for frame in picked:
        image = Image.fromarray(frame)
        width = max(1, round(image.width * height / image.height))
        resized.append(np.asarray(image.resize((width, height), Image.BILINEAR)))
    return np.concatenate(resized, axis=1)

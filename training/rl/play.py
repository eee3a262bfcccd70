"""`python -m training play <run-or-export> [--episodes 10] [--seed 0]`: play a trained policy
in its environment and print the mean return (one JSON line).

The policy is a run directory (its model.keras), a SavedModel version (exports/<name>/<version>,
its `act` signature) or an export's base directory (exports/<name>: the newest version); the
environment is the one export_info.json names. Episode i is reset with seed + i, actions are
deterministic. Exit 2 for a path that holds no policy.
"""

import json
import pathlib
import sys

import numpy as np

from training import tooling


def main(argv=None) -> int:
    parser = tooling.ArgumentParser(
        prog="python -m training play", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "policy", help="a run directory, exports/<name> or exports/<name>/<version>"
    )
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    try:
        args = parser.parse_args(argv)
        if args.episodes <= 0:
            raise tooling.BadRequest("--episodes must be positive")
        act, info, source = load(args.policy)
        from training.rl import envs

        found = envs.evaluate(act, info["env"], args.episodes, args.seed)
    except (tooling.BadRequest, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    returns = found["returns"]
    print(
        json.dumps(
            {
                "policy": str(source),
                "env": info["env"],
                "episodes": args.episodes,
                "seed": args.seed,
                "mean_return": round(float(np.mean(returns)), 3),
                "std_return": round(float(np.std(returns)), 3),
                "min_return": round(float(np.min(returns)), 3),
                "max_return": round(float(np.max(returns)), 3),
                "mean_length": round(float(np.mean(found["lengths"])), 2),
            }
        )
    )
    return 0


def load(path):
    """(act: observations -> actions, export_info, the directory it came from)."""
    path = pathlib.Path(path)
    if (path / "model.keras").is_file() and (path / "export_info.json").is_file():
        return _from_run(path)
    if not (path / "saved_model.pb").is_file():
        versions = sorted(
            (p for p in path.glob("*") if p.name.isdigit()), key=lambda p: int(p.name)
        )
        if not versions:
            raise tooling.BadRequest(
                f"{path} is neither a finished run (model.keras, export_info.json) nor an export "
                "(<name>/<version>/saved_model.pb)"
            )
        path = versions[-1]
    info_file = path / "assets.extra" / "export_info.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    if info.get("task") != "policy":
        raise tooling.BadRequest(f"{path} is not an exported policy (task {info.get('task')!r})")
    import console

    console.import_tensorflow()
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    act_fn = loaded.signatures["act"]

    def act(obs):
        return act_fn(observation=tf.constant(obs, tf.float32))["action"].numpy()

    return act, info, path


def _from_run(run_dir):
    info = json.loads((run_dir / "export_info.json").read_text())
    if info.get("task") != "policy":
        raise tooling.BadRequest(f"{run_dir} did not train a policy (task {info.get('task')!r})")
    import console

    console.import_tensorflow()
    import keras

    import zoo  # noqa: F401  (registers the networks model.keras names)

    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    output = info["policy_output"]
    discrete = info["action_space"]["type"] == "discrete"

    def act(obs):
        found = np.asarray(model(obs, training=False)[output])
        return np.argmax(found, axis=-1) if discrete else found

    return act, info, run_dir

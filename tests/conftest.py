"""Shared fixtures: the offline data beside the checkout, quiet TensorFlow, tiny subprocess runs,
and training + export in one process."""

import dataclasses
import os
import pathlib
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("ZOO_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.fail(f"offline test data not found at {SHARED_DATA} (set ZOO_SHARED_DATA)")
    return SHARED_DATA


def run_module(*args, env=None, timeout=600, cwd=None):
    """Run `python -m <args>` in a fresh interpreter; returns the CompletedProcess."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", *map(str, args)],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclasses.dataclass
class Exported:
    """A RunResult with the SavedModel version directory its export wrote."""

    run: object
    export_dir: pathlib.Path

    def __getattr__(self, name):
        return getattr(self.run, name)


def train_and_export(recipe, root, **train_kwargs) -> Exported:
    """What `python -m training train` does, in this process: the loop, then the recipe's export
    formats (runs/ and exports/ under `root`)."""
    from serving import exporters
    from training import loop

    root = pathlib.Path(root)
    result = loop.train(recipe, logdir=root / "runs", verbose=False, **train_kwargs)
    written = exporters.export_run(result.run_dir, root / "exports", say=lambda *_: None)
    return Exported(result, pathlib.Path(written["saved_model"]))


@pytest.fixture(scope="session")
def tiny_cnn_run(shared_data, tmp_path_factory):
    """A finished run of the cnn recipe (tiny, 4 steps on the shared digits), not exported."""
    from training import loop, recipes

    recipe = recipes.resolve(
        "cnn",
        [
            f"data.dataset=folder:{shared_data / 'mnist5k'}",
            "run.tiny=true",
            "train.max_steps=4",
            "train.batch_size=32",
            "data.shuffle_buffer=256",
        ],
    )
    return loop.train(recipe, logdir=tmp_path_factory.mktemp("tiny-cnn"), verbose=False)
